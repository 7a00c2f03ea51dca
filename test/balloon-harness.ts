/**
 * Test harness for the balloon device: a test memory, the hot path (wasm or JS reference), a fake
 * transport handle, a fake clock, and one MockQueue per negotiated queue — no emulator, no PCI.
 */
import { BalloonDevice, type BalloonOptions } from "../src/balloon/device.js";
import type { BalloonDiagnostic } from "../src/balloon/diagnostics.js";
import type { BalloonClock } from "../src/balloon/events.js";
import { featureBit, queueLayout, type QueueRole } from "../src/balloon/features.js";
import { BalloonHost } from "../src/host/balloon-host.js";
import { loadHotPath, referenceHotPath, type HotPath } from "../src/hotpath/hotpath.js";
import { createTestMemory, type TestMemory } from "./support/test-memory.js";
import type { VirtioTransportHandle } from "../src/virtio/device-backend.js";
import { Virtqueue } from "../src/virtio/virtqueue.js";
import { MockQueue, type BufSpec, type ChainInfo } from "./support/mock-driver.js";

export class FakeClock implements BalloonClock {
  t = 1_000_000;
  private seq = 1;
  private timers = new Map<number, { at: number; every: number | null; fn: () => void }>();
  now(): number { return this.t; }
  setInterval(fn: () => void, ms: number): unknown { const id = this.seq++; this.timers.set(id, { at: this.t + ms, every: ms, fn }); return id; }
  setTimeout(fn: () => void, ms: number): unknown { const id = this.seq++; this.timers.set(id, { at: this.t + ms, every: null, fn }); return id; }
  clearInterval(h: unknown): void { this.timers.delete(h as number); }
  clearTimeout(h: unknown): void { this.timers.delete(h as number); }
  get pendingTimers(): number { return this.timers.size; }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; every: number | null; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      const [id, tm] = next;
      this.t = tm.at;
      if (tm.every) tm.at += tm.every;
      else this.timers.delete(id);
      tm.fn();
    }
    this.t = end;
  }
}

export class FakeTransport implements VirtioTransportHandle {
  negotiated = 0n;
  queueInterrupts: number[] = [];
  configInterrupts = 0;
  resets: string[] = [];
  interruptQueue(index: number): void { this.queueInterrupts.push(index); }
  interruptConfig(): void { this.configInterrupts++; }
  needsReset(reason: string): void { this.resets.push(reason); }
}

export const PAGE = 4096;
export const RAM = 16 << 20;
export const RAM_PAGES = RAM / PAGE;
/** First PFN the tests use for balloon pages (above every queue's rings and buffers). */
export const PFN_BASE = 0x400;

export interface HarnessOptions extends BalloonOptions {
  /** Features the driver accepts (default: everything offered). */
  accept?: bigint;
  /** Written to poison_val before DRIVER_OK when PAGE_POISON is accepted (default 0xaaaaaaaa). */
  poisonVal?: number;
  /** "wasm" (default) or "js". */
  hot?: "wasm" | "js";
  /** Queue size the mock driver uses (default 256). */
  queueSize?: number;
  /** Skip activation (DRIVER_OK). */
  noActivate?: boolean;
  /** Byte RAM starts with (default 0x5a, so zero fills are visible). */
  initialFill?: number;
}

export interface Harness {
  mem: TestMemory;
  hot: HotPath;
  clock: FakeClock;
  transport: FakeTransport;
  dev: BalloonDevice;
  host: BalloonHost;
  accepted: bigint;
  refusal: string | null;
  vqs: Virtqueue[];
  mqs: MockQueue[];
  diags: BalloonDiagnostic[];
  roles: QueueRole[];
  index(role: QueueRole): number;
  mq(role: QueueRole): MockQueue;
  /** Add a chain on the role's queue and notify the device. */
  send(role: QueueRole, bufs: readonly BufSpec[]): ChainInfo;
  kick(role: QueueRole): void;
  kinds(): string[];
  /** Fill pages [pfn, pfn+n) with a byte. */
  paint(pfn: number, n: number, byte: number): void;
  page(pfn: number): Uint8Array;
}

export function bits(...names: Parameters<typeof featureBit>[0][]): bigint {
  return names.reduce((a, n) => a | featureBit(n), featureBit("VERSION_1"));
}

export async function makeBalloon(opts: HarnessOptions = {}): Promise<Harness> {
  const mem = createTestMemory(RAM, { initialFill: opts.initialFill ?? 0x5a });
  const hot = opts.hot === "js" ? referenceHotPath(mem) : await loadHotPath(mem);
  const clock = new FakeClock();
  const dev = new BalloonDevice(mem, hot, { clock, ...opts });
  const transport = new FakeTransport();
  dev.attach(transport);
  const diags: BalloonDiagnostic[] = [];
  dev.on("diagnostic", (d) => diags.push(d));
  const accepted = opts.accept ?? dev.offeredFeatures();
  const refusal = dev.validateFeatures(accepted);
  const roles = queueLayout(accepted);
  const vqs: Virtqueue[] = [];
  const mqs: MockQueue[] = [];
  for (let i = 0; i < roles.length; i++) {
    const vq = new Virtqueue(mem, hot, i, dev.queueMaxSize(i));
    const mq = new MockQueue(mem, { size: opts.queueSize ?? 256, at: 0x10000 + i * 0x80000, bufferBytes: 0x70000 });
    const why = mq.attach(vq);
    if (why) throw new Error(why);
    vqs.push(vq);
    mqs.push(mq);
  }
  if (refusal === null) {
    transport.negotiated = accepted;
    if (accepted & featureBit("PAGE_POISON")) dev.writeConfig(12, 4, opts.poisonVal ?? 0xaaaaaaaa);
    if (!opts.noActivate) dev.activate(accepted, vqs);
  }
  const index = (role: QueueRole) => {
    const i = roles.indexOf(role);
    if (i < 0) throw new Error(`no ${role} queue`);
    return i;
  };
  const h: Harness = {
    // Device tests drive targets past the host's floor on purpose.
    mem, hot, clock, transport, dev, host: new BalloonHost(dev, { floor: "off" }), accepted, refusal, vqs, mqs, diags, roles,
    index,
    mq: (role) => mqs[index(role)]!,
    send(role, bufs) {
      const c = mqs[index(role)]!.addChain(bufs);
      dev.notify(index(role));
      return c;
    },
    kick(role) { dev.notify(index(role)); },
    kinds: () => diags.map((d) => d.kind),
    paint(pfn, n, byte) { mem.bytes().fill(byte, pfn * PAGE, (pfn + n) * PAGE); },
    page(pfn) { return mem.bytes().slice(pfn * PAGE, (pfn + 1) * PAGE); },
  };
  return h;
}

export function le32(values: readonly number[]): Uint8Array {
  return MockQueue.le32(values);
}

export function allBytes(b: Uint8Array, v: number): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== v) return false;
  return true;
}

/** Stats buffer: {le16 tag, le64 val} entries. */
export function statsBuf(entries: ReadonlyArray<readonly [number, bigint | number]>): Uint8Array {
  const b = new Uint8Array(entries.length * 10);
  const v = new DataView(b.buffer);
  entries.forEach(([tag, val], i) => {
    v.setUint16(i * 10, tag, true);
    v.setBigUint64(i * 10 + 2, BigInt(val), true);
  });
  return b;
}

// A balloon's snapshot restored as ONE unit: transport + queues + device parsed and checked first,
// committed only when all is good; otherwise one StateError with the field path and nothing changed.
import { describe, expect, it } from "vitest";
import { BalloonDevice, type BalloonOptions } from "../src/balloon/device.js";
import { referenceHotPath } from "../src/hotpath/reference.js";
import { checkBalloonSnapshot, commitBalloonState, liveLimits, parseBalloonSlot, saveBalloonSlot, StateError } from "../src/host/snapshot.js";
import { STATUS, VirtioPciTransport } from "../src/virtio/pci-transport.js";
import { BAR_LAYOUT } from "../src/virtio/pci-config-space.js";
import { bits, FakeClock, le32, PAGE, PFN_BASE, RAM, statsBuf } from "./balloon-harness.js";
import { MockQueue } from "./support/mock-driver.js";
import { FakePci } from "./support/pci-driver.js";
import { createTestMemory } from "./support/test-memory.js";

const A_D = STATUS.ACKNOWLEDGE | STATUS.DRIVER;
const C = BAR_LAYOUT.common.offset;

/**
 * A balloon behind its transport, driven through the BAR; queues laid out by MockQueue at fixed places.
 * Pass another rig's memory to restore into it as v86 would (guest RAM comes back with the snapshot).
 */
function rig(opts: BalloonOptions = {}, shared?: ReturnType<typeof createTestMemory>) {
  const mem = shared ?? createTestMemory(RAM);
  if (!shared) mem.bytes().fill(0x5a);
  const hot = referenceHotPath(mem);
  const clock = new FakeClock();
  const pci = new FakePci();
  const dev = new BalloonDevice(mem, hot, { clock, ...opts });
  const diags: string[] = [];
  dev.on("diagnostic", (d) => diags.push(d.kind));
  const t = new VirtioPciTransport(pci, mem, hot, dev, {
    pciId: 0x70, port: 0x9000,
    onDiagnostic: (d) => dev.diagnostics.emit(d.kind, d.message, { source: "transport", ...d.detail }),
  });
  const r = (o: number, w: 1 | 2 | 4) => pci.dev.io.read(o, w);
  const w = (o: number, width: 1 | 2 | 4, v: number) => pci.dev.io.write(o, width, v);
  const mqs = new Map<number, MockQueue>();
  const driver = {
    status: (s: number) => w(C + 0x14, 1, s),
    accept(f: bigint) {
      w(C + 0x08, 4, 0); w(C + 0x0c, 4, Number(f & 0xffffffffn));
      w(C + 0x08, 4, 1); w(C + 0x0c, 4, Number(f >> 32n));
    },
    /** Lay queue i out (MockQueue) and program + enable it through the BAR. */
    queue(i: number): MockQueue {
      const q = new MockQueue(mem, { size: 64, at: 0x10000 + i * 0x40000, bufferBytes: 0x30000 });
      w(C + 0x16, 2, i);
      w(C + 0x18, 2, q.size);
      for (const [off, a] of [[0x20, q.descAddr], [0x28, q.availAddr], [0x30, q.usedAddr]] as const) { w(C + off, 4, a); w(C + off + 4, 4, 0); }
      w(C + 0x1c, 2, 1);
      mqs.set(i, q);
      return q;
    },
    notify: (i: number) => w(BAR_LAYOUT.notify.offset + 2 * i, 2, i),
    /** Linux's order: features, FEATURES_OK, queues, (stats buffer + notify), DRIVER_OK. */
    bringUp(features: bigint, queues: number, live = true) {
      this.status(A_D);
      this.accept(features);
      this.status(A_D | STATUS.FEATURES_OK);
      for (let i = 0; i < queues; i++) this.queue(i);
      if (live) this.status(A_D | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    },
  };
  /** The whole balloon slot as it goes into a v86 state (JSON round trip included). */
  const save = () => {
    const [json, bm] = saveBalloonSlot(t, dev) as [string, Uint8Array];
    return [json, bm.slice()] as [string, Uint8Array];
  };
  const restore = (slot: unknown[] | null) => commitBalloonState(parseBalloonSlot(slot, liveLimits(t, dev)), t, dev);
  return { mem, hot, clock, pci, dev, t, r, w, driver, mqs, diags, save, restore };
}

const V1 = bits();
const edit = (slot: [string, Uint8Array], f: (j: { transport: any; device: any }) => void): [string, Uint8Array] => {
  const j = JSON.parse(slot[0]) as { transport: any; device: any };
  f(j);
  return [JSON.stringify(j), slot[1]];
};

describe("snapshot: restore as one validated unit", () => {
  it("round-trips a live balloon (queues, stats buffer held, inflated pages) into a fresh one", () => {
    const a = rig();
    a.driver.bringUp(bits("STATS_VQ"), 3, false);
    a.mqs.get(2)!.addChain([{ data: statsBuf([[4, 42]]) }]);
    a.driver.notify(2); // Linux: before DRIVER_OK
    a.driver.status(A_D | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    a.mqs.get(0)!.addChain([{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
    a.driver.notify(0);
    expect(a.dev.inflatedPages).toBe(2);
    const slot = a.save();
    const b = rig();
    b.restore(slot);
    expect(b.save()).toEqual(slot);
    expect(b.dev.live).toBe(true);
    expect(b.dev.latestStats!.values.MEMFREE).toBe(42);
  });

  it("keeps a notification made before DRIVER_OK: the restored device sees the stats buffer at DRIVER_OK", () => {
    const a = rig();
    a.driver.bringUp(bits("STATS_VQ"), 3, false);
    a.mqs.get(2)!.addChain([{ data: statsBuf([[4, 7]]) }]);
    a.driver.notify(2);
    expect(a.diags).toEqual(["notify-before-driver-ok"]);
    const b = rig({}, a.mem);
    b.restore(a.save());
    b.w(C + 0x14, 1, A_D | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    expect(b.dev.counters().statsSamples).toBe(1);
    expect(b.dev.latestStats!.values.MEMFREE).toBe(7);
  });

  it("refuses hostile states with one StateError naming the field; the live balloon is exactly as before", () => {
    const a = rig({ features: { PAGE_POISON: false } });
    a.driver.bringUp(bits("STATS_VQ", "PAGE_REPORTING"), 4);
    a.mqs.get(2)!.addChain([{ data: statsBuf([[4, 1]]) }]);
    a.driver.notify(2);
    const good = a.save();
    const cases: Array<[string, [string, Uint8Array] | unknown[] | null]> = [
      ["transport.status", edit(good, (j) => { j.transport.status = 1.5; })],
      ["transport.queueSelect", edit(good, (j) => { j.transport.queueSelect = 0.5; })],
      ["transport.isr", edit(good, (j) => { j.transport.isr = null; })],
      ["transport.deviceFeatureSelect", edit(good, (j) => { j.transport.deviceFeatureSelect = "1e3"; })],
      ["transport.queues", edit(good, (j) => { j.transport.queues = {}; })],
      ["transport.queues[1].descAddr", edit(good, (j) => { j.transport.queues[1].descAddr = -16; })],
      ["transport.queues[0].enabled", edit(good, (j) => { j.transport.queues[0].descAddr = RAM; })],
      ["transport.negotiated", edit(good, (j) => { j.transport.negotiated = j.transport.driverFeatures = String(BigInt(j.transport.negotiated) | (1n << 4n)); })],
      ["transport.negotiated", edit(good, (j) => { j.transport.negotiated = j.transport.driverFeatures = String((BigInt(j.transport.negotiated) | (1n << 6n)) & ~(1n << 5n)); })],
      ["transport.earlyNotified", edit(good, (j) => { j.transport.earlyNotified = [2]; })],
      ["device.negotiated", edit(good, (j) => { j.device.negotiated = String(BigInt(j.device.negotiated) & ~(1n << 5n)); })],
      ["device.active", edit(good, (j) => { j.device.active = false; j.device.negotiated = "0"; j.device.stats.heldHead = null; })],
      ["device.stats.heldHead", edit(good, (j) => { j.device.stats.heldHead = 1000; })],
      ["device.stats.intervalSeconds", edit(good, (j) => { j.device.stats.intervalSeconds = 30 * 24 * 3600; })],
      ["device.version", edit(good, (j) => { j.device.version = 99; })],
      ["device.inflatedBitmap", [good[0], (() => { const b = good[1].slice(); b[b.length - 1] = 0; b[0] = 0; return b.subarray(1); })()]],
      ["balloon", [good[0]]],
      ["balloon", null],
      ["balloon", ["{", good[1]]],
    ];
    const before = JSON.stringify(a.save());
    for (const [path, slot] of cases) {
      let err: unknown = null;
      try { a.restore(slot as unknown[] | null); } catch (e) { err = e; }
      expect(err, path).toBeInstanceOf(StateError);
      expect((err as StateError).path, (err as Error).message).toBe(path);
      expect(JSON.stringify(a.save()), path).toBe(before);
    }
    // Guest register accesses still work after every refusal.
    expect(() => { a.r(C + 0x16, 2); a.w(C + 0x16, 2, 1); a.r(C + 0x20, 4); }).not.toThrow();
  });

  it("bitmap padding bits past the last page are refused (pages that could never be deflated)", () => {
    const a = rig();
    const odd = createTestMemory(RAM - PAGE); // 4095 pages: one padding bit
    const dev = new BalloonDevice(odd, referenceHotPath(odd), { clock: new FakeClock() });
    const s = dev.saveState();
    s.inflatedBitmap[s.inflatedBitmap.length - 1] = 0x80;
    expect(() => dev.restoreState(s)).toThrow(/device\.inflatedBitmap: padding bits/);
    expect(a.dev.live).toBe(false);
  });

  it("the huge-num-pages fault does not make the device refuse its own snapshot", () => {
    const a = rig({ faults: { hugeNumPages: true } });
    a.driver.bringUp(V1, 2);
    expect(a.dev.target).toBe(0xffffffff);
    const b = rig({ faults: { hugeNumPages: true } });
    b.restore(a.save());
    expect(b.dev.target).toBe(0xffffffff);
    expect(() => rig().restore(a.save())).toThrow(/device\.config\.numPages/);
  });

  it("fault counters are saved: dropUsedEvery keeps counting, resetMidInflate does not re-arm", () => {
    const a = rig({ faults: { dropUsedEvery: 4, resetMidInflate: true } });
    a.driver.bringUp(V1, 2);
    a.mqs.get(0)!.addChain([{ data: le32([PFN_BASE]) }]);
    a.driver.notify(0); // taken by resetMidInflate: DEVICE_NEEDS_RESET
    expect(a.dev.counters().faults.resetMidInflate).toBe(1);
    a.driver.status(0);
    a.driver.bringUp(V1, 2);
    for (let i = 0; i < 3; i++) { a.mqs.get(0)!.addChain([{ data: le32([PFN_BASE + i]) }]); a.driver.notify(0); }
    expect(a.mqs.get(0)!.used()).toHaveLength(3);
    const b = rig({ faults: { dropUsedEvery: 4, resetMidInflate: true } }, a.mem);
    b.restore(a.save());
    a.mqs.get(0)!.addChain([{ data: le32([PFN_BASE + 9]) }]);
    b.driver.notify(0);
    expect(b.dev.counters().faults.dropUsedEvery).toBe(1); // the 4th chain, counted across the snapshot
    expect(b.dev.counters().faults.resetMidInflate).toBeUndefined();
    expect(b.r(C + 0x14, 1) & STATUS.DEVICE_NEEDS_RESET).toBe(0);
  });
});

describe("checkBalloonSnapshot: the gate for a state file, without an emulator", () => {
  /** A v86 0.5 state file (header, info JSON, buffers) holding `slot` in the balloon's slot 100. */
  function v86File(slot: [string, Uint8Array] | null): ArrayBuffer {
    const state: unknown[] = [];
    state[100] = slot ? [slot[0], { __state_type__: 5, buffer_id: 0 }] : undefined;
    const info = new TextEncoder().encode(JSON.stringify({ state, buffer_infos: slot ? [{ offset: 0, length: slot[1].length }] : [] }));
    const start = (16 + info.length + 3) & ~3;
    const out = new Uint8Array(start + (slot ? slot[1].length : 0));
    const dv = new DataView(out.buffer);
    dv.setUint32(0, 0x86768676, true);
    dv.setInt32(4, 6, true);
    dv.setUint32(8, out.length, true);
    dv.setInt32(12, info.length, true);
    out.set(info, 16);
    if (slot) out.set(slot[1], start);
    return out.buffer;
  }

  it("accepts a good state, refuses a bad one by path, a foreign file at path v86", () => {
    const a = rig();
    a.driver.bringUp(bits("STATS_VQ"), 3);
    const good = a.save();
    expect(checkBalloonSnapshot(v86File(good), { memoryBytes: RAM })).toEqual({ checked: true, negotiated: ["STATS_VQ"], live: true });
    expect(() => checkBalloonSnapshot(v86File(good), { memoryBytes: 2 * RAM })).toThrow(/device\.inflatedBitmap/);
    expect(() => checkBalloonSnapshot(v86File(good), { memoryBytes: RAM, features: { STATS_VQ: false } })).toThrow(StateError);
    expect(() => checkBalloonSnapshot(v86File(edit(good, (j) => { j.transport.status = 0x30; })), { memoryBytes: RAM })).toThrow(/transport\.status/);
    expect(() => checkBalloonSnapshot(v86File(null), { memoryBytes: RAM })).toThrow(/balloon/);
    expect(() => checkBalloonSnapshot(new ArrayBuffer(64), { memoryBytes: RAM })).toThrow(/^bad saved state: v86:/);
    const zstd = new Uint8Array(64);
    new DataView(zstd.buffer).setUint32(0, 0xfd2fb528, true);
    expect(checkBalloonSnapshot(zstd.buffer, { memoryBytes: RAM })).toEqual({ checked: false });
  });
});

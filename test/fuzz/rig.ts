/**
 * One device under fuzz: guest memory with canaries, a hot path (wasm or the JS reference) behind a work
 * counter, the balloon device and its virtio-pci transport wired as src/host/attach.ts wires them, a fake
 * PCI host and a fake clock. The fuzzer drives it only through the BAR (as a driver does), the host API
 * and save/restore (as the VM's snapshot hook does).
 */
import { BalloonDevice, type BalloonOptions } from "../../src/balloon/device.js";
import type { BalloonDiagnostic } from "../../src/balloon/diagnostics.js";
import type { BalloonFaults } from "../../src/balloon/context.js";
import type { FeatureOffer } from "../../src/balloon/features.js";
import { stateToJSON } from "../../src/balloon/persist.js";
import { BalloonHost } from "../../src/host/balloon-host.js";
import { loadHotPath, referenceHotPath, type HotPath } from "../../src/hotpath/hotpath.js";
import type { PciDeviceRegistration, PciHost } from "../../src/virtio/pci-host.js";
import { VirtioPciTransport } from "../../src/virtio/pci-transport.js";
import { commitBalloonState, liveLimits, parseBalloonSlot, saveBalloonSlot } from "../../src/host/snapshot.js";
import { FakeClock } from "../balloon-harness.js";
import { createFuzzMemory, type FuzzMemory } from "./memory.js";

/** Everything that makes one episode's device: plain JSON, kept in every repro case. */
export interface RigConfig {
  ram: number;
  /** Offset of guest-physical 0 in the wasm memory (varied so both hot paths see several). */
  base: number;
  offer: FeatureOffer;
  faults: BalloonFaults;
  zeroFreedPages: boolean;
  hintAutoDone: boolean;
  initialTarget: number;
  /** Byte guest RAM starts with. */
  fill: number;
}

export class FuzzPci implements PciHost {
  dev!: PciDeviceRegistration;
  irq = false;
  registerDevice(d: PciDeviceRegistration): void { this.dev = d; }
  raiseIrq(): void { this.irq = true; }
  lowerIrq(): void { this.irq = false; }
}

/** FakeClock that remembers every interval it was asked for (a stats interval must be a sane timer). */
export class FuzzClock extends FakeClock {
  readonly intervals: number[] = [];
  override setInterval(fn: () => void, ms: number): unknown {
    this.intervals.push(ms);
    // As Node and browsers do: an interval outside 1 .. 2^31-1 ms runs every 1 ms.
    return super.setInterval(fn, ms >= 1 && ms <= 2 ** 31 - 1 ? ms : 1);
  }
}

/**
 * Work the device asked of the hot path, in bytes of guest RAM it may touch: PFN list and descriptor
 * bytes read, plus a whole page per PFN it may fill or scan, plus every byte of a range fill. The fuzzer
 * bounds this per request (a counter, not a clock: the machine's load cannot make it flaky).
 */
export function countingHotPath(inner: HotPath, counter: { work: number }): HotPath {
  return {
    kind: inner.kind,
    walkChain(descAddr, qsize, head, outPtr, maxSeg, allowIndirect) {
      const n = inner.walkChain(descAddr, qsize, head, outPtr, maxSeg, allowIndirect);
      counter.work += 16 * Math.max(1, n);
      return n;
    },
    fillPfns(pfnAddr, count, fill, bitmapPtr, flags, trackPtr) {
      counter.work += count * (flags & 4 ? 4 : 4 + 4096);
      return inner.fillPfns(pfnAddr, count, fill, bitmapPtr, flags, trackPtr);
    },
    unmarkPfns(pfnAddr, count, trackPtr) {
      counter.work += count * 4;
      return inner.unmarkPfns(pfnAddr, count, trackPtr);
    },
    fillRange(addr, len, fill) {
      counter.work += len;
      return inner.fillRange(addr, len, fill);
    },
    pushUsed(usedAddr, qsize, usedIdx, id, len) {
      counter.work += 8;
      return inner.pushUsed(usedAddr, qsize, usedIdx, id, len);
    },
  };
}

/** A saved state exactly as the VM's snapshot carries it: one JSON string and the inflated bitmap. */
export interface SavedState { json: string; bitmap: Uint8Array }

export class Rig {
  readonly work = { work: 0 };
  readonly diags: BalloonDiagnostic[] = [];
  readonly clock = new FuzzClock();
  readonly pci = new FuzzPci();
  readonly host: BalloonHost;
  readonly device: BalloonDevice;
  readonly transport: VirtioPciTransport;

  private constructor(readonly config: RigConfig, readonly mem: FuzzMemory, hot: HotPath) {
    const opts: BalloonOptions = {
      clock: this.clock, features: config.offer, faults: config.faults, zeroFreedPages: config.zeroFreedPages,
      hintAutoDone: config.hintAutoDone, initialTarget: config.initialTarget,
    };
    const counted = countingHotPath(hot, this.work);
    this.device = new BalloonDevice(mem, counted, opts);
    const device = this.device;
    this.transport = new VirtioPciTransport(this.pci, mem, counted, device, {
      pciId: 0x0e << 3, port: 0x9000, name: "virtio-balloon",
      onDiagnostic: (d) => device.diagnostics.emit(d.kind, d.message, { source: "transport", ...d.detail }),
    });
    this.device.on("diagnostic", (d) => this.diags.push(d));
    this.host = new BalloonHost(this.device);
  }

  static async create(config: RigConfig, kind: "wasm" | "js"): Promise<Rig> {
    const mem = createFuzzMemory(config.ram, { base: config.base });
    mem.bytes().fill(config.fill);
    const hot = kind === "js" ? referenceHotPath(mem) : await loadHotPath(mem);
    return new Rig(config, mem, hot);
  }

  barRead(offset: number, width: 1 | 2 | 4): number { return this.pci.dev.io.read(offset, width); }
  barWrite(offset: number, width: 1 | 2 | 4, value: number): void { this.pci.dev.io.write(offset, width, value); }

  /** What the VM's snapshot hook saves (src/host/attach.ts). */
  save(): SavedState {
    const [json, bitmap] = saveBalloonSlot(this.transport, this.device) as [string, Uint8Array];
    return { json, bitmap };
  }

  /** What the VM's snapshot hook restores (src/host/attach.ts): parse and check all, then commit; throws if refused. */
  restore(s: SavedState): void {
    const parsed = parseBalloonSlot([s.json, s.bitmap], liveLimits(this.transport, this.device));
    commitBalloonState(parsed, this.transport, this.device);
  }

  /** Chains the driver made available that the device has not taken yet (a restore picks them up). */
  pendingChains(): number {
    return this.transport.queues.reduce((n, q) => n + q.pending(), 0);
  }

  /** Everything observable about the device but guest RAM: registers, queues, config, counters (timers are
   *  not: a continuation left over from an idle queue is harmless, and the saved state holds the stats interval). */
  fingerprint(): string {
    const d = stateToJSON(this.device.saveState());
    return JSON.stringify({
      t: this.transport.saveState(), d, irq: this.pci.irq,
      live: this.device.live, target: this.device.target, interval: this.device.statsIntervalSeconds,
    });
  }

  /** Registers, queues and the balloon's size: cheap enough for every request. */
  quickFingerprint(): string {
    const h = this.device.hintingState;
    return `${JSON.stringify(this.transport.saveState())}|${this.pci.irq}|${this.device.live}|${this.device.target}|${this.device.inflatedPages}|${this.device.actual}|${h.status}|${h.configValue}`;
  }

  takeDiags(): BalloonDiagnostic[] {
    return this.diags.splice(0);
  }
}

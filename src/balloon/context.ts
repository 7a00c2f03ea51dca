/**
 * What the per-queue handlers (inflate.ts, reporting.ts, hinting.ts, stats.ts) share: guest memory,
 * the hot path, diagnostics, events, counters, the fill policy and the inflated-page tracking bitmap.
 * The device (device.ts) builds one of these and wires it.
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import type { HotPath } from "../hotpath/hotpath.js";
import type { DiagnosticSink } from "./diagnostics.js";
import type { BalloonClock, BalloonEvents, TypedEmitter } from "./events.js";
import { hasFeature } from "./features.js";

export const PAGE_SIZE = 4096;

/**
 * FAULT INJECTION — makes the device deliberately WRONG, to test a driver's defences (spec patch v3
 * §Security Considerations: an untrusted device can claim initialisation it did not do). All off by default.
 */
export interface BalloonFaults {
  /** Bit 7: set bitmap bits for every valid PFN but leave the pages untouched. Bit 6: report the whole
   *  chain as initialised (used length = all writable bytes) but leave the pages untouched. */
  lieAboutInit?: boolean;
  /** Bit 7: set the padding bits of the last bitmap byte (the spec says they MUST be 0). */
  setPaddingBits?: boolean;
  /** Bit 6: report a used length one page (4096 bytes) shorter than what was initialised (min 0). */
  shortReportUsedLength?: boolean;
  /** Neither bit 6 nor PAGE_POISON: fill reported pages with 0x5A (allowed: the device MAY modify them). */
  scribbleReported?: boolean;
  /** Hold every used buffer this many ms (host clock) before writing it and interrupting. */
  delayUsedMs?: number;
  /** Never return every Nth chain of the inflate and of the deflate queue (processed, no used element). */
  dropUsedEvery?: number;
  /** Never raise queue interrupts (the used ring is still written; only a polling driver sees it). */
  withholdInterrupts?: boolean;
  /** Show num_pages = 0xFFFFFFFF from the start, and host targets unclamped (the spec's denial of service). */
  hugeNumPages?: boolean;
  /** After DRIVER_OK and every host target change: `count` more config interrupts, one per `intervalMs`;
   *  with `toggle`, num_pages flips between the previous and the new target, ending on the new one. */
  configStorm?: ConfigStorm;
  /** The next inflate request is not completed: DEVICE_NEEDS_RESET is set instead (once per device). */
  resetMidInflate?: boolean;
}

export interface ConfigStorm { intervalMs: number; count: number; toggle?: boolean }

/** The faults the per-queue handlers act on themselves; the others act in faults.ts. */
export type InitFaults = Required<Pick<BalloonFaults, "lieAboutInit" | "setPaddingBits" | "shortReportUsedLength" | "scribbleReported">>;

export interface RequestCounters { inflate: number; deflate: number; report: number; hint: number; stats: number }

export interface DeviceCounters {
  /** Valid pages received on the inflate queue (cumulative). */
  pagesInflated: number;
  /** Valid pages received on the deflate queue (cumulative). */
  pagesDeflated: number;
  /** 4 KiB pages covered by free page reports (cumulative). */
  pagesReported: number;
  /** 4 KiB pages hinted in a started cycle (cumulative). */
  pagesHinted: number;
  /** Bytes of guest RAM the device filled with 0. */
  bytesZeroed: number;
  /** Bytes of guest RAM the device filled with a non-zero poison byte. */
  bytesPoisoned: number;
  /** Inflate init bitmaps written (bit 7). */
  bitmapsWritten: number;
  /** Chains handled per queue kind. */
  requests: RequestCounters;
  /** Hinting cycles started by the host. */
  hintCycles: number;
  /** Stats samples received. */
  statsSamples: number;
}

export function newCounters(): DeviceCounters {
  return {
    pagesInflated: 0, pagesDeflated: 0, pagesReported: 0, pagesHinted: 0,
    bytesZeroed: 0, bytesPoisoned: 0, bitmapsWritten: 0,
    requests: { inflate: 0, deflate: 0, report: 0, hint: 0, stats: 0 },
    hintCycles: 0, statsSamples: 0,
  };
}

/**
 * The byte pages are initialised with: 0, or poison_val's byte when PAGE_POISON is negotiated.
 * poison_val is a u32; Linux always writes a repeated byte (0 with init_on_free, else 0xAA). If its four
 * bytes differ this device does NOT fill at all (returns null): leaving pages unmodified is always allowed
 * with PAGE_POISON, and such pages are never reported as initialised (no bitmap bit, no used length).
 */
export function fillByteFor(negotiated: bigint, poisonVal: number): number | null {
  if (!hasFeature(negotiated, "PAGE_POISON")) return 0;
  const b = poisonVal & 0xff;
  const repeated = (b * 0x01010101) >>> 0;
  return (poisonVal >>> 0) === repeated ? b : null;
}

/** One bit per guest page: which pages are in the balloon (inflated, not yet deflated). Lives in scratch. */
export class InflateTracker {
  readonly ptr: number;
  readonly bytes: number;
  /** Pages currently marked. */
  count = 0;

  constructor(private readonly mem: GuestMemory) {
    this.bytes = Math.ceil(mem.size / PAGE_SIZE / 8);
    this.ptr = mem.allocScratch(this.bytes);
    this.clear();
  }

  private view(): Uint8Array {
    return new Uint8Array(this.mem.memory.buffer, this.ptr, this.bytes);
  }

  clear(): void {
    this.view().fill(0);
    this.count = 0;
  }

  isInflated(pfn: number): boolean {
    if (pfn < 0 || pfn >= this.bytes * 8) return false;
    return ((this.view()[pfn >> 3]! >> (pfn & 7)) & 1) === 1;
  }

  snapshot(): Uint8Array {
    return this.view().slice();
  }

  restore(bits: Uint8Array): void {
    const v = this.view();
    v.fill(0);
    v.set(bits.subarray(0, this.bytes));
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      let b = v[i]!;
      while (b) {
        b &= b - 1;
        n++;
      }
    }
    this.count = n;
  }
}

export interface HandlerContext {
  readonly mem: GuestMemory;
  readonly hot: HotPath;
  readonly diag: DiagnosticSink;
  readonly clock: BalloonClock;
  readonly events: TypedEmitter<BalloonEvents>;
  readonly counters: DeviceCounters;
  readonly faults: Readonly<InitFaults>;
  readonly tracker: InflateTracker;
  /** Absolute scratch for one hot-path bitmap chunk (INFLATE_CHUNK / 8 bytes). */
  readonly bitmapScratch: number;
  /** Negotiated features (0n when not live). */
  negotiated(): bigint;
  /** See fillByteFor. */
  fillByte(): number | null;
  /** Zero reported / hinted pages when neither PAGE_POISON nor bit 6 forces a value (default true). */
  readonly zeroFreedPages: boolean;
}

/** Count a fill in the byte counters. */
export function countFill(c: DeviceCounters, value: number, bytes: number): void {
  if (value === 0) c.bytesZeroed += bytes;
  else c.bytesPoisoned += bytes;
}

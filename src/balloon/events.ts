/**
 * Typed events of the balloon device (re-exported by the host API), the clock/timer abstraction the
 * device takes (injectable: no real timers in unit tests), and a tiny typed emitter.
 */
import type { BalloonDiagnostic } from "./diagnostics.js";
import type { FaultName } from "./faults.js";
import type { StatsSample } from "./stats.js";

/** Time source and timers. `now()` in milliseconds. */
export interface BalloonClock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Date.now and the global timers; in Node the polling interval is unref'd (it never keeps the process alive). */
export const systemClock: BalloonClock = {
  now: () => Date.now(),
  setInterval: (fn, ms) => {
    const t = globalThis.setInterval(fn, ms);
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clearInterval: (h) => globalThis.clearInterval(h as ReturnType<typeof globalThis.setInterval>),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
};

/** Host changed the target (num_pages). */
export interface TargetEvent { time: number; pages: number; previous: number; bytes: number }
/** Driver wrote `actual`. `pages` = value clamped to RAM (used for accounting), `raw` = what it wrote. */
export interface ActualEvent { time: number; pages: number; raw: number; previous: number; target: number; inflatedPages: number }
export interface InflateEvent {
  time: number; queue: number;
  /** PFNs in the request. */
  pfns: number;
  /** Valid (in-RAM) pages taken into the balloon. */
  pages: number;
  /** Pages the device initialised (zero / poison); with fault `lieAboutInit` this is 0 though bits are set. */
  initialised: number;
  outOfRange: number; alreadyInflated: number;
  /** Bytes of init bitmap written (bit 7), = used length. */
  bitmapBytes: number;
  /** Pages currently in the balloon by the device's own tracking. */
  inflatedPages: number;
  refused: boolean;
}
export interface DeflateEvent {
  time: number; queue: number; pfns: number; pages: number;
  outOfRange: number; notInflated: number; inflatedPages: number; refused: boolean;
}
export interface ReportEvent {
  time: number; queue: number; ranges: number;
  /** 4 KiB pages covered by the ranges (bytes / 4096, rounded down). */
  pages: number; bytes: number;
  /** Bytes the device filled (zero or poison). */
  filledBytes: number;
  usedLen: number;
}
export type HintPhase = "requested" | "started" | "pages" | "driver-stopped" | "stopped" | "done" | "ignored";
export interface HintEvent { time: number; phase: HintPhase; cmdId: number; cycle: number; pages: number; totalPages: number }
export interface FeaturesEvent {
  time: number; offered: bigint; accepted: bigint; negotiated: bigint;
  names: string[]; refused: string | null; pages: number;
}
/** A fault-injection mode acted (see faults.ts): what it did, on which queue. */
export interface FaultEvent { time: number; fault: FaultName; action: string; queue?: number; detail: Record<string, unknown> }
export interface ResetEvent { time: number; pages: number; inflatedPagesDropped: number }

export interface BalloonEvents {
  target: TargetEvent;
  actual: ActualEvent;
  inflate: InflateEvent;
  deflate: DeflateEvent;
  report: ReportEvent;
  hint: HintEvent;
  stats: StatsSample;
  diagnostic: BalloonDiagnostic;
  features: FeaturesEvent;
  reset: ResetEvent;
  fault: FaultEvent;
}

/** The event names (`keyof BalloonEvents`), as the project's vocabulary lists them. */
export type { BalloonEventName } from "../vocabulary.js";

export class TypedEmitter<E extends object> {
  private readonly map = new Map<keyof E, Set<(e: never) => void>>();

  on<K extends keyof E>(name: K, fn: (e: E[K]) => void): () => void {
    let set = this.map.get(name);
    if (!set) this.map.set(name, (set = new Set()));
    set.add(fn as (e: never) => void);
    return () => this.off(name, fn);
  }

  off<K extends keyof E>(name: K, fn: (e: E[K]) => void): void {
    this.map.get(name)?.delete(fn as (e: never) => void);
  }

  emit<K extends keyof E>(name: K, event: E[K]): void {
    const set = this.map.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (e: E[K]) => void)(event);
      } catch {
        // a listener's bug must not break the device
      }
    }
  }
}

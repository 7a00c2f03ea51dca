/**
 * FAULT INJECTION at run time: the faults that change WHEN and WHETHER the device answers (used buffers,
 * queue interrupts, num_pages, config interrupts, DEVICE_NEEDS_RESET). The faults that change WHAT it
 * writes into a request act in inflate.ts / reporting.ts. All off by default (see BalloonFaults in
 * context.ts). Every act is counted and announced as a "fault" event, so a harness trace shows it.
 */
import type { BalloonFaults, ConfigStorm, FaultName } from "./fault-modes.js";
import type { BalloonClock, BalloonEvents, TypedEmitter } from "./events.js";
import { hasFeature, offeredWithoutRequirement } from "./features.js";

export type { FaultName } from "./fault-modes.js";

/** Fault state a snapshot keeps: chains counted per queue (dropUsedEvery), whether resetMidInflate is still armed. */
export interface FaultState {
  resetArmed: boolean;
  chainsSeen: Record<number, number>;
  /** How many times each fault acted (counters().faults). */
  acts: Partial<Record<FaultName, number>>;
}

/**
 * The faults that change what the device writes (inflate.ts, reporting.ts) announce each act the same
 * way, so a test can assert that the fault acted before it asserts what the driver did about it.
 */
export function announceInitFault(
  ctx: { clock: BalloonClock; events: TypedEmitter<BalloonEvents> },
  fault: FaultName, action: string, queue: number, detail: Record<string, unknown>,
): void {
  ctx.events.emit("fault", { time: ctx.clock.now(), fault, action, queue, detail });
}

/** num_pages under hugeNumPages until the host sets a target: the largest value the field holds. */
export const HUGE_NUM_PAGES = 0xffffffff;

function positive(v: number | undefined): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : 0;
}

export class FaultInjector {
  readonly hugeNumPages: boolean;
  readonly withholdInterrupts: boolean;
  readonly offerUnchecked: boolean;
  private readonly delayMs: number;
  private readonly dropEvery: number;
  private readonly storm: Required<ConfigStorm> | null;
  private readonly resetConfigured: boolean;
  private resetArmed: boolean;
  /** Inflate / deflate chains seen per queue, for dropUsedEvery. */
  private readonly chainsSeen = new Map<number, number>();
  /** Held used-buffer batches, cancelled on reset (their queue is gone). */
  private readonly held = new Map<unknown, number>();
  private stormTimer: unknown = null;
  private stormShown: number | null = null;
  private readonly acts: Partial<Record<FaultName, number>> = {};

  constructor(
    faults: BalloonFaults,
    private readonly clock: BalloonClock,
    private readonly events: TypedEmitter<BalloonEvents>,
    private readonly ramPages: number,
  ) {
    this.delayMs = positive(faults.delayUsedMs);
    this.dropEvery = Math.floor(positive(faults.dropUsedEvery));
    this.withholdInterrupts = faults.withholdInterrupts === true;
    this.hugeNumPages = faults.hugeNumPages === true;
    this.offerUnchecked = faults.offerUnchecked === true;
    this.resetConfigured = faults.resetMidInflate === true;
    this.resetArmed = this.resetConfigured;
    const s = faults.configStorm;
    const count = Math.floor(positive(s?.count));
    this.storm = s && count > 0 ? { count, intervalMs: Math.max(1, positive(s.intervalMs)), toggle: s.toggle === true } : null;
  }

  /** How many times each fault acted. */
  counts(): Partial<Record<FaultName, number>> {
    return { ...this.acts };
  }

  private act(fault: FaultName, action: string, detail: Record<string, unknown>, queue?: number): void {
    this.acts[fault] = (this.acts[fault] ?? 0) + 1;
    this.events.emit("fault", { time: this.clock.now(), fault, action, ...(queue === undefined ? {} : { queue }), detail });
  }

  /** Driver set DRIVER_OK: announce a huge num_pages, start a config storm. */
  activated(numPages: number, raiseConfig: () => void): void {
    if (this.hugeNumPages && numPages > this.ramPages) {
      this.act("hugeNumPages", "num-pages-above-ram", { numPages, ramPages: this.ramPages });
    }
    this.startStorm(numPages, numPages, raiseConfig);
  }

  /** hugeNumPages: a host target taken as is (only made a u32), never clamped to RAM. */
  rawTarget(pages: number): number {
    const p = Number.isFinite(pages) ? Math.min(HUGE_NUM_PAGES, Math.max(0, Math.floor(pages))) : 0;
    if (p > this.ramPages) this.act("hugeNumPages", "num-pages-above-ram", { numPages: p, ramPages: this.ramPages });
    return p;
  }

  /** Hand over a batch of used buffers: now, or after delayUsedMs. */
  deliver(queue: number, buffers: number, push: () => void): void {
    if (this.delayMs === 0) {
      push();
      return;
    }
    this.act("delayUsedMs", "used-held", { buffers, ms: this.delayMs }, queue);
    const timer = this.clock.setTimeout(() => {
      this.held.delete(timer);
      push();
    }, this.delayMs);
    this.held.set(timer, queue);
  }

  /** dropUsedEvery: true for every Nth inflate / deflate chain of a queue (its used element is never written). */
  drops(queue: number, head: number): boolean {
    if (this.dropEvery === 0) return false;
    const n = (this.chainsSeen.get(queue) ?? 0) + 1;
    this.chainsSeen.set(queue, n);
    if (n % this.dropEvery !== 0) return false;
    this.act("dropUsedEvery", "used-dropped", { head, chain: n }, queue);
    return true;
  }

  /** withholdInterrupts: true when a queue interrupt must not be raised. */
  withholds(queue: number): boolean {
    if (!this.withholdInterrupts) return false;
    this.act("withholdInterrupts", "interrupt-withheld", {}, queue);
    return true;
  }

  /** offerUnchecked: at FEATURES_OK, one act per offered bit whose required bit was not offered. */
  negotiating(offered: bigint, accepted: bigint): void {
    if (!this.offerUnchecked) return;
    for (const { feature, requires } of offeredWithoutRequirement(offered)) {
      this.act("offerUnchecked", "offered-without-requirement", { feature, requires, accepted: hasFeature(accepted, feature) });
    }
  }

  /** resetMidInflate: true once, for the first inflate request (which must then not be completed). */
  takesResetMidInflate(queue: number, head: number): boolean {
    if (!this.resetArmed) return false;
    this.resetArmed = false;
    this.act("resetMidInflate", "needs-reset", { head }, queue);
    return true;
  }

  /** configStorm: (re)start the storm for a target change from `previous` to `target`. */
  startStorm(previous: number, target: number, raiseConfig: () => void): void {
    const s = this.storm;
    if (!s) return;
    this.stopStorm();
    this.act("configStorm", "storm-started", { count: s.count, intervalMs: s.intervalMs, toggle: s.toggle, previous, target });
    let tick = 0;
    this.stormTimer = this.clock.setInterval(() => {
      tick++;
      // Toggled ticks alternate so that the last one (tick === count) shows the real target.
      this.stormShown = s.toggle && (s.count - tick) % 2 === 1 ? previous : null;
      if (tick >= s.count) this.stopStorm();
      raiseConfig();
    }, s.intervalMs);
  }

  /** num_pages the driver reads: the storm's toggled value, else the device's. */
  numPagesShown(numPages: number): number {
    return this.stormShown ?? numPages;
  }

  private stopStorm(): void {
    if (this.stormTimer === null) return;
    this.clock.clearInterval(this.stormTimer);
    this.stormTimer = null;
    this.stormShown = null;
  }

  save(): FaultState {
    return { resetArmed: this.resetArmed, chainsSeen: Object.fromEntries(this.chainsSeen), acts: { ...this.acts } };
  }

  /** After cancel(): take a saved state's counters. Arming only ever goes away (a saved disarmed fault stays so). */
  restore(s: FaultState): void {
    this.resetArmed = this.resetConfigured && s.resetArmed;
    for (const [q, n] of Object.entries(s.chainsSeen)) this.chainsSeen.set(Number(q), n);
    for (const k of Object.keys(this.acts) as FaultName[]) delete this.acts[k];
    Object.assign(this.acts, s.acts);
  }

  /** Device reset / restore / dispose: held buffers belong to queues that are gone; the storm ends. */
  cancel(): void {
    for (const [timer, queue] of this.held) {
      this.clock.clearTimeout(timer);
      this.act("delayUsedMs", "held-used-discarded", {}, queue);
    }
    this.held.clear();
    this.chainsSeen.clear();
    this.stopStorm();
  }
}

/**
 * The host API of the balloon: what the demo, the embed component and tests use.
 *
 *   const host = new BalloonHost(device);
 *   host.on("actual", (e) => console.log(`${e.pages} pages in the balloon`));
 *   host.setTargetBytes(64 << 20);              // ask the guest to give up 64 MiB
 *   const s = await host.requestStats();        // { time, values: { MEMFREE, ... }, freePages, ... }
 *
 * Units: pages are 4 KiB (virtio-balloon's unit, whatever the guest page size). `target` is the balloon
 * size the host asks for (num_pages), `actual` the size the driver reports (clamped to RAM).
 * Setting the target writes num_pages and raises a configuration-change interrupt through the transport.
 * Targets are held below a floor that leaves the guest enough memory to live (see floor.ts: default
 * "auto", from the guest's MemAvailable; `{ floor: "off" }` for tests that starve the guest on purpose).
 */
import type { BalloonControl, BalloonCounters } from "../balloon/control.js";
import type { BalloonEvents, BalloonEventName } from "../balloon/events.js";
import { describeFeatures } from "../balloon/features.js";
import type { HintingState } from "../balloon/hinting.js";
import type { StatsSample } from "../balloon/stats.js";
import { PAGE_SIZE } from "../balloon/context.js";
import { targetLimit, type FloorOption, type StatsAtActual, type TargetLimit } from "./floor.js";

export type { BalloonEvents, BalloonEventName } from "../balloon/events.js";
export type { StatsSample, StatName } from "../balloon/stats.js";
export type { BalloonDiagnostic } from "../balloon/diagnostics.js";
export type { BalloonCounters } from "../balloon/control.js";
export { parseFloor, type FloorOption, type TargetLimit } from "./floor.js";

export interface BalloonHostOptions {
  /** Memory the balloon always leaves to the guest: "auto" (default), "off", or bytes. See floor.ts. */
  floor?: FloorOption;
}

/** The last setTarget that the floor cut down. */
export interface TargetClamp {
  requested: number;
  pages: number;
  limit: TargetLimit;
}

export const BALLOON_PAGE_SIZE = PAGE_SIZE;

export interface FeatureView {
  /** Offered bits and their names. */
  offered: bigint;
  offeredNames: string[];
  /** Bits in force (0n until the driver set DRIVER_OK) and their names. */
  negotiated: bigint;
  negotiatedNames: string[];
  /** Features the host asked for that are not offered because a feature they require is off. */
  warnings: readonly string[];
}

export class BalloonHost {
  private floorOpt: FloorOption;
  private statsSeen: StatsAtActual | null = null;
  /** Set when the last setTarget asked for more than the floor allows; null otherwise. */
  lastClamp: TargetClamp | null = null;

  constructor(
    readonly device: BalloonControl,
    opts: BalloonHostOptions = {},
  ) {
    this.floorOpt = opts.floor ?? "auto";
    targetLimit(this.floorOpt, device.ramPages, null); // validates the option now, not at the first setTarget
    // The balloon size when a sample arrives is what its MemAvailable is relative to.
    device.on("stats", (sample) => (this.statsSeen = { sample, actual: device.actual }));
  }

  get floor(): FloorOption {
    return this.floorOpt;
  }

  set floor(f: FloorOption) {
    targetLimit(f, this.device.ramPages, null);
    this.floorOpt = f;
  }

  /** The largest target setTarget accepts now, and where that limit comes from. */
  limit(): TargetLimit {
    const s = this.device.latestStats;
    // A sample that arrived without our listener (restored state) is taken at the current balloon size.
    const at = s === null ? null : this.statsSeen?.sample === s ? this.statsSeen : { sample: s, actual: this.device.actual };
    return targetLimit(this.floorOpt, this.device.ramPages, at);
  }

  /** Guest RAM in 4 KiB pages. */
  get ramPages(): number {
    return this.device.ramPages;
  }

  /** Balloon target (num_pages), pages. */
  get target(): number {
    return this.device.target;
  }

  /**
   * Set the balloon target in pages, held at `limit().maxPages` (then `lastClamp` says why) and clamped to
   * RAM with a diagnostic. Returns the value set.
   */
  setTarget(pages: number): number {
    const limit = this.limit();
    this.lastClamp = null;
    if (limit.source !== "off" && pages > limit.maxPages) {
      this.lastClamp = { requested: pages, pages: limit.maxPages, limit };
      pages = limit.maxPages;
    }
    return this.device.setTarget(pages);
  }

  /** Set the balloon target in bytes, rounded to the nearest 4 KiB page; same limits as setTarget. Returns pages. */
  setTargetBytes(bytes: number): number {
    return this.setTarget(Math.round(bytes / PAGE_SIZE));
  }

  /** Pages in the balloon as the driver reports them (`actual`, clamped to RAM). */
  get actual(): number {
    return this.device.actual;
  }

  /** Pages in the balloon by the device's own tracking (inflated and not deflated). */
  get inflatedPages(): number {
    return this.device.inflatedPages;
  }

  /** True between DRIVER_OK and the next reset. */
  get live(): boolean {
    return this.device.live;
  }

  /** The latest statistics sample, or null. */
  stats(): StatsSample | null {
    return this.device.latestStats;
  }

  /** Ask the driver for fresh statistics (rejects if STATS_VQ is not live, or after `timeoutMs`, default 5 s). */
  requestStats(timeoutMs?: number): Promise<StatsSample> {
    return this.device.requestStats(timeoutMs);
  }

  /** Stats polling interval in seconds; 0 turns polling off. */
  setStatsInterval(seconds: number): void {
    this.device.setStatsInterval(seconds);
  }

  get statsInterval(): number {
    return this.device.statsIntervalSeconds;
  }

  /** Start a free page hinting cycle; returns its command ID, or null if FREE_PAGE_HINT is not live. */
  startHinting(): number | null {
    return this.device.startHinting();
  }

  /**
   * End hinting: STOP, then (by default) DONE so the guest releases the pages it hinted — this device
   * handled every hint on receipt and needs none of them. `{ release: false }` leaves it at STOP (the
   * guest keeps its hinted pages until `finishHinting()`).
   */
  stopHinting(opts: { release?: boolean } = {}): void {
    this.device.stopHinting();
    if (opts.release ?? true) this.device.finishHinting();
  }

  /** DONE: the guest may release its hinted pages. */
  finishHinting(): void {
    this.device.finishHinting();
  }

  get hinting(): Readonly<HintingState> {
    return this.device.hintingState;
  }

  counters(): BalloonCounters {
    return this.device.counters();
  }

  get features(): FeatureView {
    const offered = this.device.offeredBits;
    const negotiated = this.device.negotiatedBits;
    return { offered, offeredNames: describeFeatures(offered), negotiated, negotiatedNames: describeFeatures(negotiated), warnings: this.device.offerWarnings };
  }

  on<K extends BalloonEventName>(name: K, fn: (e: BalloonEvents[K]) => void): () => void {
    return this.device.on(name, fn);
  }

  off<K extends BalloonEventName>(name: K, fn: (e: BalloonEvents[K]) => void): void {
    this.device.off(name, fn);
  }
}

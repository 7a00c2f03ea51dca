/**
 * The virtio memory balloon device (type 5): the `VirtioDeviceBackend` the virtio-pci transport drives
 * (features, activation, reset, save/restore) and the host-facing `BalloonControl` (control.ts) that
 * `BalloonHost` uses (target, counters, stats, hinting, events). The concerns live in their own files:
 *   config.ts     the device configuration, as a table of fields
 *   dispatch.ts   what one notify does: chains to handlers, used elements, bounded work per notify
 *   features.ts   feature bits, offer, FEATURES_OK rules, queue numbering
 *   inflate.ts    inflate / deflate path (fill through the hot path, init bitmap, tracking)
 *   reporting.ts  free page reporting (+ bit 6 used length); ranges.ts: the ranges' checks
 *   hinting.ts    free page hinting cycles
 *   stats.ts      statistics queue + polling
 *   diagnostics.ts  named bad-input kinds and the conformance rules they report
 *   persist.ts    save / restore (parse, then apply)
 *   faults.ts     fault injection on delivery, interrupts, num_pages and reset (off by default)
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import type { HotPath } from "../hotpath/hotpath.js";
import type { VirtioDeviceBackend, VirtioTransportHandle } from "../virtio/device-backend.js";
import type { Virtqueue } from "../virtio/virtqueue.js";
import {
  fillByteFor, InflateTracker, newCounters, PAGE_SIZE,
  type DeviceCounters, type HandlerContext, type WorkMeter,
} from "./context.js";
import { DiagnosticSink, type BalloonDiagnostic } from "./diagnostics.js";
import { BALLOON_CONFIG_SIZE, BalloonConfig } from "./config.js";
import type { BalloonControl, BalloonCounters } from "./control.js";
import { QueueDispatcher } from "./dispatch.js";
import type { BalloonFaults } from "./fault-modes.js";
import { FaultInjector, HUGE_NUM_PAGES } from "./faults.js";
import { systemClock, TypedEmitter, type BalloonClock, type BalloonEvents } from "./events.js";
import {
  describeFeatures, hasFeature, offeredFeatureBits, offerProblems, QUEUE_MAX_SIZE, queueLayout,
  REPORTING_MIN_QUEUE_SIZE, validateBalloonFeatures, type FeatureOffer, type QueueRole,
} from "./features.js";
import { Hinting, type HintingState } from "./hinting.js";
import { handleDeflate, handleInflate, INFLATE_CHUNK } from "./inflate.js";
import { buildState, parseState, type BalloonDeviceState, type ParsedState, type StateLimits } from "./persist.js";
import { handleReport } from "./reporting.js";
import { Stats, type StatsSample } from "./stats.js";

export const VIRTIO_ID_BALLOON = 5;
export { BALLOON_CONFIG_SIZE } from "./config.js";
export { NOTIFY_WORK_BUDGET } from "./dispatch.js";

export interface BalloonOptions {
  /** Which optional feature bits to offer; every bit defaults to offered. VERSION_1 is always offered. */
  features?: FeatureOffer;
  /** Time source and timers (default: Date.now and global timers). Inject a fake one in tests. */
  clock?: BalloonClock;
  /** FAULT INJECTION — deliberately wrong device behaviour (see context.ts, faults.ts). Off by default. */
  faults?: BalloonFaults;
  /**
   * Zero reported / hinted pages when no feature forces a value (default true: v86 snapshots store only
   * non-zero pages). With PAGE_POISON they are filled with poison_val's byte regardless; with bit 6 the
   * reported pages are always filled.
   */
  zeroFreedPages?: boolean;
  /** Show DONE as soon as the driver ends a hinting round with STOP (default true; see hinting.ts). */
  hintAutoDone?: boolean;
  /** Initial stats polling interval in seconds (default 0 = off). */
  statsIntervalSeconds?: number;
  /** Initial balloon target in 4 KiB pages (default 0). */
  initialTarget?: number;
}

export type { BalloonCounters } from "./control.js";


export class BalloonDevice implements VirtioDeviceBackend, BalloonControl {
  readonly deviceType = VIRTIO_ID_BALLOON;
  readonly configSize = BALLOON_CONFIG_SIZE;

  readonly events = new TypedEmitter<BalloonEvents>();
  readonly diagnostics: DiagnosticSink;
  readonly clock: BalloonClock;
  readonly ramPages: number;

  private readonly offered: bigint;
  /** What the host asked to offer that breaks a feature dependency (and is therefore not offered). */
  readonly offerWarnings: readonly string[];
  private readonly ctx: HandlerContext;
  private readonly tracker: InflateTracker;
  private readonly counters_: DeviceCounters = newCounters();
  private readonly hinting: Hinting;
  private readonly statsq: Stats;
  private readonly faults: FaultInjector;
  private transport: VirtioTransportHandle | null = null;
  /** Work of the notify in progress (handlers add to it). */
  private readonly work: WorkMeter = { units: 0 };
  private readonly config: BalloonConfig;
  private readonly queues: QueueDispatcher;

  // live state
  private active = false;
  private features = 0n;
  private accepted = 0n;

  constructor(readonly mem: GuestMemory, readonly hot: HotPath, readonly options: BalloonOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.ramPages = Math.floor(mem.size / PAGE_SIZE);
    const faults = options.faults ?? {};
    this.offered = offeredFeatureBits(options.features, faults.offerUnchecked === true);
    this.diagnostics = new DiagnosticSink(this.clock);
    this.diagnostics.on((d) => this.events.emit("diagnostic", d));
    this.tracker = new InflateTracker(mem);
    this.faults = new FaultInjector(faults, this.clock, this.events, this.ramPages);
    this.ctx = {
      mem, hot, diag: this.diagnostics, clock: this.clock, events: this.events, counters: this.counters_,
      faults: {
        lieAboutInit: faults.lieAboutInit === true,
        setPaddingBits: faults.setPaddingBits === true,
        shortReportUsedLength: faults.shortReportUsedLength === true,
        scribbleReported: faults.scribbleReported === true,
      },
      tracker: this.tracker,
      bitmapScratch: mem.allocScratch(INFLATE_CHUNK / 8),
      negotiated: () => (this.active ? this.features : 0n),
      fillByte: () => fillByteFor(this.active ? this.features : 0n, this.config.poisonVal),
      zeroFreedPages: options.zeroFreedPages ?? true,
      work: this.work,
    };
    this.hinting = new Hinting(this.ctx, () => this.configChanged(), options.hintAutoDone ?? true);
    this.statsq = new Stats(this.ctx, () => this.queues.queueOf("stats") !== null, (head) => this.releaseStats(head));
    this.config = new BalloonConfig({
      diag: this.diagnostics, events: this.events, clock: this.clock, ramPages: this.ramPages, tracker: this.tracker,
      numPagesShown: (n) => this.faults.numPagesShown(n),
      hintCmdId: () => this.hinting.configValue,
      live: () => this.active,
      poisonFeatures: () => (this.active ? this.features : (this.transport?.negotiated ?? this.accepted)),
    });
    this.queues = new QueueDispatcher({
      inflate: (c, i) => handleInflate(this.ctx, c, i),
      deflate: (c, i) => handleDeflate(this.ctx, c, i),
      reporting: (c, i) => handleReport(this.ctx, c, i),
      "free-page": (c, i) => this.hinting.handle(c, i),
      stats: (c, i) => this.statsq.handle(c, i),
    }, this.work, this.diagnostics, this.clock, this.faults, () => this.transport);
    if (this.faults.hugeNumPages) this.config.numPages = HUGE_NUM_PAGES;
    else if (options.initialTarget) this.config.numPages = this.clampTarget(options.initialTarget);
    if (options.statsIntervalSeconds) this.statsq.setInterval(options.statsIntervalSeconds);
    // Counted (counters().diagnosticsByKind) and kept in offerWarnings: no listener exists yet.
    this.offerWarnings = this.faults.offerUnchecked ? [] : offerProblems(options.features);
    for (const w of this.offerWarnings) this.diagnostics.emit("offer-dependency", w, { offer: { ...options.features } });
  }

  // ---- VirtioDeviceBackend ---------------------------------------------------------------------

  offeredFeatures(): bigint {
    return this.offered;
  }

  validateFeatures(accepted: bigint, opts: { dryRun?: boolean } = {}): string | null {
    const refused = validateBalloonFeatures(accepted, this.offered);
    if (opts.dryRun) return refused;
    this.accepted = accepted;
    this.faults.negotiating(this.offered, accepted);
    // The refusal's diagnostic comes from the transport (one per refused FEATURES_OK).
    this.events.emit("features", {
      time: this.clock.now(), offered: this.offered, accepted, negotiated: refused ? 0n : accepted,
      names: describeFeatures(accepted), refused, pages: this.config.numPages,
    });
    return refused;
  }

  queueCount(accepted: bigint): number {
    return queueLayout(accepted).length;
  }

  queueMaxSize(_index: number): number {
    return QUEUE_MAX_SIZE;
  }

  readConfig(offset: number, width: 1 | 2 | 4): number {
    return this.config.read(offset, width);
  }

  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    this.config.write(offset, width, value);
  }

  attach(transport: VirtioTransportHandle): void {
    this.transport = transport;
  }

  activate(accepted: bigint, queues: readonly Virtqueue[]): void {
    this.features = accepted;
    this.accepted = accepted;
    this.queues.setLive({ roles: queueLayout(accepted), queues });
    this.active = true;
    const rq = this.queues.queueOf("reporting");
    if (rq && rq.queue.size < REPORTING_MIN_QUEUE_SIZE) {
      this.diagnostics.emit("queue-too-small", `reporting queue ${rq.index} has ${rq.queue.size} entries; Linux needs at least ${REPORTING_MIN_QUEUE_SIZE}`, { size: rq.queue.size }, rq.index);
    }
    if (hasFeature(accepted, "PAGE_POISON")) this.config.checkPoisonPattern();
    this.events.emit("features", {
      time: this.clock.now(), offered: this.offered, accepted, negotiated: accepted,
      names: describeFeatures(accepted), refused: null, pages: this.config.numPages,
    });
    this.faults.activated(this.config.numPages, () => this.configChanged());
  }

  notify(index: number): void {
    this.queues.notify(index);
  }

  /** After a restore: take up chains the driver had queued (in a later host task). */
  resumeQueues(): void {
    this.queues.resume();
  }

  reset(): void {
    const dropped = this.tracker.count;
    this.faults.cancel();
    this.queues.setLive(null);
    this.active = false;
    this.features = 0n;
    this.accepted = 0n;
    this.statsq.reset();
    this.hinting.reset();
    this.tracker.clear();
    this.config.reset();
    this.events.emit("reset", { time: this.clock.now(), pages: this.config.numPages, inflatedPagesDropped: dropped });
  }

  private releaseStats(head: number): void {
    const sq = this.queues.queueOf("stats");
    if (sq) this.queues.complete(sq.index, sq.queue, [{ head, used: 0 }]);
  }

  private configChanged(): void {
    if (this.active) this.transport?.interruptConfig();
  }

  private clampTarget(pages: number): number {
    const p = Number.isFinite(pages) ? Math.max(0, Math.floor(pages)) : 0;
    if (p > this.ramPages) {
      this.diagnostics.emit("target-above-ram", `target ${p} pages is more than guest RAM (${this.ramPages} pages); clamped`, { requested: p, ramPages: this.ramPages });
      return this.ramPages;
    }
    return p;
  }

  // ---- host-facing (used by src/host/balloon-host.ts) -----------------------------------------

  /** Balloon target (num_pages), 4 KiB pages. */
  get target(): number {
    return this.config.numPages;
  }

  /**
   * Set num_pages (clamped to RAM, diagnosed; unclamped under the hugeNumPages fault) and raise a config
   * interrupt if the driver is live. Returns the value set.
   */
  setTarget(pages: number): number {
    const p = this.faults.hugeNumPages ? this.faults.rawTarget(pages) : this.clampTarget(pages);
    const previous = this.config.numPages;
    this.config.numPages = p;
    this.events.emit("target", { time: this.clock.now(), pages: p, previous, bytes: p * PAGE_SIZE });
    this.configChanged();
    if (this.active) this.faults.startStorm(previous, p, () => this.configChanged());
    return p;
  }

  /** `actual` as written by the driver, clamped to RAM pages (accounting value). */
  get actual(): number {
    return this.config.actual;
  }

  /** `actual` exactly as written by the driver. */
  get actualUnclamped(): number {
    return this.config.actualRaw;
  }

  get poisonValue(): number {
    return this.config.poisonVal;
  }

  /** Pages in the balloon by the device's tracking bitmap. */
  get inflatedPages(): number {
    return this.tracker.count;
  }

  isInflated(pfn: number): boolean {
    return this.tracker.isInflated(pfn);
  }

  /** DRIVER_OK seen (and no reset since). */
  get live(): boolean {
    return this.active;
  }

  get offeredBits(): bigint {
    return this.offered;
  }

  /** Features in force (0n until DRIVER_OK). */
  get negotiatedBits(): bigint {
    return this.active ? this.features : 0n;
  }

  /** The features the driver last asked for at FEATURES_OK (even if refused). */
  get acceptedBits(): bigint {
    return this.accepted;
  }

  /** Queue role by index for the features in force (or offered, before DRIVER_OK). */
  queueRoles(): QueueRole[] {
    return this.active ? [...this.queues.roles] : queueLayout(this.offered);
  }

  get latestStats(): StatsSample | null {
    return this.statsq.latest;
  }

  requestStats(timeoutMs?: number): Promise<StatsSample> {
    return this.statsq.request(timeoutMs);
  }

  setStatsInterval(seconds: number): void {
    this.statsq.setInterval(seconds);
  }

  get statsIntervalSeconds(): number {
    return this.statsq.intervalSeconds;
  }

  /** Begin a hinting cycle; returns the new command ID, or null if FREE_PAGE_HINT is not live. */
  startHinting(): number | null {
    if (!this.queues.queueOf("free-page")) return null;
    return this.hinting.start();
  }

  /** Host: STOP (no more hints wanted). */
  stopHinting(): void {
    this.hinting.stop();
  }

  /** Host: DONE (the guest may release its hinted pages). */
  finishHinting(): void {
    this.hinting.done();
  }

  get hintingState(): Readonly<HintingState> {
    return this.hinting.state;
  }

  counters(): BalloonCounters {
    const c = this.counters_;
    return {
      ...c,
      requests: { ...c.requests },
      diagnostics: this.diagnostics.total,
      diagnosticsByKind: this.diagnostics.countsObject(),
      inflatedPages: this.tracker.count,
      faults: this.faults.counts(),
      notifyWork: { ...this.queues.workSeen },
    };
  }

  on<K extends keyof BalloonEvents>(name: K, fn: (e: BalloonEvents[K]) => void): () => void {
    return this.events.on(name, fn);
  }

  off<K extends keyof BalloonEvents>(name: K, fn: (e: BalloonEvents[K]) => void): void {
    this.events.off(name, fn);
  }

  onDiagnostic(fn: (d: BalloonDiagnostic) => void): () => void {
    return this.events.on("diagnostic", fn);
  }

  /** Stop timers. */
  dispose(): void {
    this.statsq.dispose();
    this.faults.cancel();
    this.queues.cancelDeferred();
  }

  // ---- persistence -----------------------------------------------------------------------------

  /** Device state (queues are saved by the transport via Virtqueue.saveState). JSON-compatible + one Uint8Array. */
  saveState(): BalloonDeviceState {
    return buildState({
      offered: this.offered,
      accepted: this.accepted,
      negotiated: this.features,
      active: this.active,
      numPages: this.config.numPages,
      actualRaw: this.config.actualRaw,
      actualShadow: this.config.actualShadow,
      poisonVal: this.config.poisonVal,
      poisonShadow: this.config.poisonShadow,
      hinting: this.hinting.save(),
      stats: this.statsq.save(),
      counters: this.counters_,
      diagnosticsTotal: this.diagnostics.total,
      diagnosticsByKind: this.diagnostics.countsObject(),
      inflatedBitmap: this.tracker.snapshot(),
      faults: this.faults.save(),
      notifyWork: this.queues.workSeen,
    });
  }

  /**
   * Check a saveState() result (or its JSON form) against this device without changing anything; throws
   * StateError with the field path under `path`. A whole balloon (transport + device) is restored through
   * src/host/snapshot.ts, which adds the checks that need both halves.
   */
  parseState(state: unknown, path = "device"): ParsedState {
    return parseState(state, this.stateLimits, path);
  }

  /** What a saved device state must fit: this device's RAM, offer and faults. */
  get stateLimits(): StateLimits {
    return { ramPages: this.ramPages, offered: this.offered, hugeNumPages: this.faults.hugeNumPages };
  }

  /**
   * Commit a parseState() result (cannot fail). Pass the transport's live queues (`slice(0, numQueues)`,
   * already restored) when the saved device was active, so it is live again without a new DRIVER_OK.
   */
  applyState(s: ParsedState, queues?: readonly Virtqueue[]): void {
    this.faults.cancel();
    this.faults.restore(s.faults);
    Object.assign(this.queues.workSeen, s.notifyWork);
    this.accepted = s.accepted;
    this.features = s.negotiated;
    this.config.numPages = s.numPages;
    this.config.actualRaw = s.actualRaw;
    this.config.actualShadow = s.actualShadow;
    this.config.poisonVal = s.poisonVal;
    this.config.poisonShadow = s.poisonShadow;
    this.hinting.restore(s.hinting);
    Object.assign(this.counters_, s.counters, { requests: { ...s.counters.requests } });
    this.diagnostics.restoreCounts(s.diagnosticsTotal, s.diagnosticsByKind);
    this.tracker.restore(s.inflatedBitmap);
    this.active = s.active && queues !== undefined;
    this.queues.setLive(this.active && queues ? { roles: queueLayout(s.negotiated), queues } : null);
    this.statsq.restore(s.stats);
  }

  /** parseState + applyState (the device alone). */
  restoreState(state: unknown, queues?: readonly Virtqueue[]): void {
    this.applyState(this.parseState(state), queues);
  }
}

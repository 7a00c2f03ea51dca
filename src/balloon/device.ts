/**
 * The virtio memory balloon device (type 5) as a `VirtioDeviceBackend` for the virtio-pci transport.
 * This file only WIRES the concerns, each in its own file:
 *   features.ts   feature bits, offer, FEATURES_OK rules, queue numbering
 *   inflate.ts    inflate / deflate path (fill through the hot path, init bitmap, tracking)
 *   reporting.ts  free page reporting (+ bit 6 used length)
 *   hinting.ts    free page hinting cycles
 *   stats.ts      statistics queue + polling
 *   diagnostics.ts  named bad-input kinds and the conformance rules they report
 *   persist.ts    save / restore
 *   faults.ts     fault injection on delivery, interrupts, num_pages and reset (off by default)
 *
 * Config layout (le, 16 bytes): num_pages u32 @0 (device-written; driver writes ignored + diagnosed),
 * actual u32 @4 (driver-written; committed when the write covers its most significant byte, as the
 * legacy rule asks), free_page_hint_cmd_id u32 @8 (read-only to the driver), poison_val u32 @12
 * (driver-written; used only with PAGE_POISON).
 *
 * Guest input never throws out of the device: malformed chains come back used with length 0 and a
 * diagnostic; a broken avail ring (idx jump) sets DEVICE_NEEDS_RESET.
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import type { HotPath } from "../hotpath/hotpath.js";
import type { VirtioDeviceBackend, VirtioTransportHandle } from "../virtio/device-backend.js";
import { ChainError, type DescriptorChain, type Virtqueue } from "../virtio/virtqueue.js";
import {
  fillByteFor, InflateTracker, newCounters, PAGE_SIZE,
  type BalloonFaults, type DeviceCounters, type HandlerContext,
} from "./context.js";
import { DiagnosticSink, type BalloonDiagnostic } from "./diagnostics.js";
import { FaultInjector, HUGE_NUM_PAGES, type FaultName } from "./faults.js";
import { systemClock, TypedEmitter, type BalloonClock, type BalloonEvents } from "./events.js";
import {
  describeFeatures, hasFeature, offeredFeatureBits, QUEUE_MAX_SIZE, queueLayout,
  REPORTING_MIN_QUEUE_SIZE, validateBalloonFeatures, type FeatureOffer, type QueueRole,
} from "./features.js";
import { Hinting, type HintingState } from "./hinting.js";
import { handleDeflate, handleInflate, INFLATE_CHUNK } from "./inflate.js";
import { buildState, parseState, type BalloonDeviceState } from "./persist.js";
import { handleReport } from "./reporting.js";
import { Stats, type StatsSample } from "./stats.js";

export const VIRTIO_ID_BALLOON = 5;
export const BALLOON_CONFIG_SIZE = 16;

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

export interface BalloonCounters extends DeviceCounters {
  /** Diagnostics emitted (all kinds). */
  diagnostics: number;
  /** Diagnostics per kind. */
  diagnosticsByKind: Record<string, number>;
  /** Pages in the balloon right now, by the device's own tracking bitmap. */
  inflatedPages: number;
  /** How many times each fault-injection mode acted (run-time faults of faults.ts). */
  faults: Partial<Record<FaultName, number>>;
}

/** A used element waiting to be written. */
interface Completion { head: number; used: number }

export class BalloonDevice implements VirtioDeviceBackend {
  readonly deviceType = VIRTIO_ID_BALLOON;
  readonly configSize = BALLOON_CONFIG_SIZE;

  readonly events = new TypedEmitter<BalloonEvents>();
  readonly diagnostics: DiagnosticSink;
  readonly clock: BalloonClock;
  readonly ramPages: number;

  private readonly offered: bigint;
  private readonly ctx: HandlerContext;
  private readonly tracker: InflateTracker;
  private readonly counters_: DeviceCounters = newCounters();
  private readonly hinting: Hinting;
  private readonly statsq: Stats;
  private readonly faults: FaultInjector;
  private transport: VirtioTransportHandle | null = null;

  // config
  private numPages = 0;
  private actualRaw = 0;
  private actualShadow = 0;
  private poisonVal = 0;
  private poisonShadow = 0;

  // live state
  private active = false;
  private features = 0n;
  private accepted = 0n;
  private queues: readonly Virtqueue[] = [];
  private roles: QueueRole[] = [];

  constructor(readonly mem: GuestMemory, readonly hot: HotPath, readonly options: BalloonOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.ramPages = Math.floor(mem.size / PAGE_SIZE);
    this.offered = offeredFeatureBits(options.features);
    this.diagnostics = new DiagnosticSink(this.clock);
    this.diagnostics.on((d) => this.events.emit("diagnostic", d));
    this.tracker = new InflateTracker(mem);
    const faults = options.faults ?? {};
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
      fillByte: () => fillByteFor(this.active ? this.features : 0n, this.poisonVal),
      zeroFreedPages: options.zeroFreedPages ?? true,
    };
    this.hinting = new Hinting(this.ctx, () => this.configChanged(), options.hintAutoDone ?? true);
    this.statsq = new Stats(this.ctx, () => this.queueOf("stats") !== null, (head) => this.releaseStats(head));
    if (this.faults.hugeNumPages) this.numPages = HUGE_NUM_PAGES;
    else if (options.initialTarget) this.numPages = this.clampTarget(options.initialTarget);
    if (options.statsIntervalSeconds) this.statsq.setInterval(options.statsIntervalSeconds);
  }

  // ---- VirtioDeviceBackend ---------------------------------------------------------------------

  offeredFeatures(): bigint {
    return this.offered;
  }

  validateFeatures(accepted: bigint): string | null {
    const refused = validateBalloonFeatures(accepted, this.offered);
    this.accepted = accepted;
    if (refused) this.diagnostics.emit("features-refused", `FEATURES_OK refused: ${refused}`, { accepted: describeFeatures(accepted) });
    this.events.emit("features", {
      time: this.clock.now(), offered: this.offered, accepted, negotiated: refused ? 0n : accepted,
      names: describeFeatures(accepted), refused, pages: this.numPages,
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
    const img = this.configImage();
    let v = 0;
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      v |= (at >= 0 && at < BALLOON_CONFIG_SIZE ? img[at]! : 0) << (8 * i);
    }
    return v >>> 0;
  }

  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    const touched = new Map<number, number[]>(); // field index -> byte offsets written
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      if (at < 0 || at >= BALLOON_CONFIG_SIZE) continue;
      const f = at >> 2;
      if (!touched.has(f)) touched.set(f, []);
      touched.get(f)!.push(at);
    }
    const byteOf = (at: number) => (value >>> (8 * (at - offset))) & 0xff;
    const merge = (old: number, field: number, bytes: number[]) => {
      let v = old;
      for (const at of bytes) {
        const shift = 8 * (at - field * 4);
        v = (v & ~(0xff << shift)) | (byteOf(at) << shift);
      }
      return v >>> 0;
    };
    for (const [field, bytes] of touched) {
      if (field === 0 || field === 2) {
        const name = field === 0 ? "num_pages" : "free_page_hint_cmd_id";
        this.diagnostics.emit("write-to-read-only-field", `driver wrote ${width} byte(s) at config offset ${offset} (0x${(value >>> 0).toString(16)}) into ${name}, which is read-only to the driver; ignored`, { field: name, offset, width, value: value >>> 0 });
      } else if (field === 1) {
        this.actualShadow = merge(this.actualShadow, 1, bytes);
        if (bytes.includes(7)) this.commitActual(this.actualShadow);
      } else {
        this.poisonShadow = merge(this.poisonShadow, 3, bytes);
        if (bytes.includes(15)) this.commitPoison(this.poisonShadow);
      }
    }
  }

  attach(transport: VirtioTransportHandle): void {
    this.transport = transport;
  }

  activate(accepted: bigint, queues: readonly Virtqueue[]): void {
    this.features = accepted;
    this.accepted = accepted;
    this.roles = queueLayout(accepted);
    this.queues = queues;
    this.active = true;
    const rq = this.queueOf("reporting");
    if (rq && rq.queue.size < REPORTING_MIN_QUEUE_SIZE) {
      this.diagnostics.emit("queue-too-small", `reporting queue ${rq.index} has ${rq.queue.size} entries; Linux needs at least ${REPORTING_MIN_QUEUE_SIZE}`, { size: rq.queue.size }, rq.index);
    }
    if (hasFeature(accepted, "PAGE_POISON")) this.checkPoisonPattern();
    this.events.emit("features", {
      time: this.clock.now(), offered: this.offered, accepted, negotiated: accepted,
      names: describeFeatures(accepted), refused: null, pages: this.numPages,
    });
    this.faults.activated(this.numPages, () => this.configChanged());
  }

  notify(index: number): void {
    const role = this.active ? this.roles[index] : undefined;
    const q = this.active ? this.queues[index] : undefined;
    if (!role || !q || !q.enabled) {
      this.diagnostics.emit("notify-disabled-queue", `notify for queue ${index}, which is not live on this device${this.active ? "" : " (not activated)"}`, { index }, index);
      return;
    }
    const done: Completion[] = [];
    for (let guard = 0; guard <= 0x10000; guard++) {
      let chain: DescriptorChain | null;
      try {
        chain = q.pop();
      } catch (e) {
        if (e instanceof ChainError) {
          this.diagnostics.emit(e.kind, e.message, { head: e.head, chainKind: e.kind }, index);
          if (e.head >= 0) {
            // A head that is not a descriptor index (head-out-of-range) cannot be given back.
            if (e.head < q.size) done.push({ head: e.head, used: 0 });
            continue;
          }
          // The ring itself is broken (avail idx jump): nothing sane can be popped any more.
          this.transport?.needsReset(e.message);
          break;
        }
        this.internalError(e, index);
        break;
      }
      if (!chain) break;
      if (role === "inflate" && this.faults.takesResetMidInflate(index, chain.head)) {
        this.transport?.needsReset(`fault resetMidInflate: inflate request (head ${chain.head}) not completed`);
        break;
      }
      let used: number | null = 0;
      try {
        used = this.dispatch(role, chain, index);
      } catch (e) {
        this.internalError(e, index);
        used = 0;
      }
      if (used === null) continue;
      if ((role === "inflate" || role === "deflate") && this.faults.drops(index, chain.head)) continue;
      done.push({ head: chain.head, used });
    }
    this.complete(index, q, done);
  }

  reset(): void {
    const dropped = this.tracker.count;
    this.faults.cancel();
    this.active = false;
    this.features = 0n;
    this.accepted = 0n;
    this.queues = [];
    this.roles = [];
    this.statsq.reset();
    this.hinting.reset();
    this.tracker.clear();
    this.actualRaw = this.actualShadow = 0;
    this.poisonVal = this.poisonShadow = 0;
    this.events.emit("reset", { time: this.clock.now(), pages: this.numPages, inflatedPagesDropped: dropped });
  }

  // ---- dispatch --------------------------------------------------------------------------------

  private dispatch(role: QueueRole, chain: DescriptorChain, index: number): number | null {
    switch (role) {
      case "inflate": return handleInflate(this.ctx, chain, index);
      case "deflate": return handleDeflate(this.ctx, chain, index);
      case "reporting": return handleReport(this.ctx, chain, index);
      case "free-page": return this.hinting.handle(chain, index);
      case "stats": return this.statsq.handle(chain, index);
    }
  }

  /** Write used elements and interrupt once — through the delivery faults (delay, withheld interrupt). */
  private complete(index: number, q: Virtqueue, done: readonly Completion[]): void {
    if (done.length === 0) return;
    this.faults.deliver(index, done.length, () => {
      let pushed = false;
      for (const c of done) pushed = this.safePush(q, c.head, c.used) || pushed;
      if (pushed && !this.faults.withholds(index)) this.transport?.interruptQueue(index);
    });
  }

  private safePush(q: Virtqueue, head: number, used: number): boolean {
    try {
      q.push(head, used);
      return true;
    } catch (e) {
      this.internalError(e, q.index);
      return false;
    }
  }

  private internalError(e: unknown, queue: number): void {
    const msg = e instanceof Error ? e.message : String(e);
    this.diagnostics.emit("device-internal-error", `queue ${queue}: ${msg}`, { error: msg }, queue);
  }

  private queueOf(role: QueueRole): { index: number; queue: Virtqueue } | null {
    if (!this.active) return null;
    const index = this.roles.indexOf(role);
    const queue = index >= 0 ? this.queues[index] : undefined;
    return queue && queue.enabled ? { index, queue } : null;
  }

  private releaseStats(head: number): void {
    const sq = this.queueOf("stats");
    if (sq) this.complete(sq.index, sq.queue, [{ head, used: 0 }]);
  }

  private configChanged(): void {
    if (this.active) this.transport?.interruptConfig();
  }

  // ---- config ----------------------------------------------------------------------------------

  private configImage(): Uint8Array {
    const b = new Uint8Array(BALLOON_CONFIG_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, this.faults.numPagesShown(this.numPages) >>> 0, true);
    v.setUint32(4, this.actualRaw >>> 0, true);
    v.setUint32(8, this.hinting.configValue >>> 0, true);
    v.setUint32(12, this.poisonVal >>> 0, true);
    return b;
  }

  private commitActual(raw: number): void {
    const previous = this.actualRaw;
    this.actualRaw = raw;
    const detail = { actual: raw, previous, target: this.numPages, ramPages: this.ramPages, inflatedPages: this.tracker.count };
    if (raw > this.ramPages) {
      this.diagnostics.emit("actual-above-ram", `driver wrote actual = ${raw} pages, more than guest RAM (${this.ramPages} pages); recorded, clamped to ${this.ramPages} for accounting`, detail);
    } else if (raw > this.tracker.count) {
      this.diagnostics.emit("actual-above-inflated", `driver wrote actual = ${raw} pages, but only ${this.tracker.count} pages are in the balloon by the device's tracking`, detail);
    }
    if (raw > this.numPages && raw > previous) {
      this.diagnostics.emit("actual-above-target", `driver raised actual to ${raw} pages, above the target num_pages = ${this.numPages}`, detail);
    }
    this.events.emit("actual", {
      time: this.clock.now(), pages: this.actual, raw, previous, target: this.numPages, inflatedPages: this.tracker.count,
    });
  }

  private commitPoison(v: number): void {
    const previous = this.poisonVal;
    this.poisonVal = v;
    const feats = this.active ? this.features : (this.transport?.negotiated ?? this.accepted);
    if (!hasFeature(feats, "PAGE_POISON")) {
      this.diagnostics.emit("poison-val-without-feature", `driver wrote poison_val = 0x${v.toString(16)} but PAGE_POISON is not negotiated; stored, unused`, { poisonVal: v });
      return;
    }
    if (this.active && v !== previous) {
      this.diagnostics.emit("poison-val-changed-while-live", `driver changed poison_val from 0x${previous.toString(16)} to 0x${v.toString(16)} while DRIVER_OK is set; the new value is used`, { poisonVal: v, previous });
    }
    this.checkPoisonPattern();
  }

  private checkPoisonPattern(): void {
    if (fillByteFor(1n << 4n, this.poisonVal) === null) {
      this.diagnostics.emit("poison-val-not-byte-pattern", `poison_val 0x${this.poisonVal.toString(16)} is not one repeated byte: pages will be left unmodified and never reported as initialised`, { poisonVal: this.poisonVal });
    }
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
    return this.numPages;
  }

  /**
   * Set num_pages (clamped to RAM, diagnosed; unclamped under the hugeNumPages fault) and raise a config
   * interrupt if the driver is live. Returns the value set.
   */
  setTarget(pages: number): number {
    const p = this.faults.hugeNumPages ? this.faults.rawTarget(pages) : this.clampTarget(pages);
    const previous = this.numPages;
    this.numPages = p;
    this.events.emit("target", { time: this.clock.now(), pages: p, previous, bytes: p * PAGE_SIZE });
    this.configChanged();
    if (this.active) this.faults.startStorm(previous, p, () => this.configChanged());
    return p;
  }

  /** `actual` as written by the driver, clamped to RAM pages (accounting value). */
  get actual(): number {
    return Math.min(this.actualRaw, this.ramPages);
  }

  /** `actual` exactly as written by the driver. */
  get actualUnclamped(): number {
    return this.actualRaw;
  }

  get poisonValue(): number {
    return this.poisonVal;
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
    return this.active ? [...this.roles] : queueLayout(this.offered);
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
    if (!this.queueOf("free-page")) return null;
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
  }

  // ---- persistence -----------------------------------------------------------------------------

  /** Device state (queues are saved by the transport via Virtqueue.saveState). JSON-compatible + one Uint8Array. */
  saveState(): BalloonDeviceState {
    return buildState({
      offered: this.offered,
      accepted: this.accepted,
      negotiated: this.features,
      active: this.active,
      numPages: this.numPages,
      actualRaw: this.actualRaw,
      actualShadow: this.actualShadow,
      poisonVal: this.poisonVal,
      poisonShadow: this.poisonShadow,
      hinting: this.hinting.save(),
      stats: this.statsq.save(),
      counters: this.counters_,
      diagnosticsTotal: this.diagnostics.total,
      diagnosticsByKind: this.diagnostics.countsObject(),
      inflatedBitmap: this.tracker.snapshot(),
    });
  }

  /**
   * Restore a saveState() result. Pass the transport's live queues (already restored, `slice(0, numQueues)`)
   * when the saved device was active, so the device is live again without a new DRIVER_OK. Throws a
   * TypeError on a malformed state (nothing is changed then).
   */
  restoreState(state: unknown, queues?: readonly Virtqueue[]): void {
    const s = parseState(state, this.ramPages);
    if (s.offered !== this.offered) {
      throw new TypeError(`balloon: saved state was made with offered features ${describeFeatures(s.offered).join(",")}, this device offers ${describeFeatures(this.offered).join(",")}`);
    }
    this.faults.cancel();
    this.accepted = s.accepted;
    this.features = s.negotiated;
    this.numPages = s.numPages;
    this.actualRaw = s.actualRaw;
    this.actualShadow = s.actualShadow;
    this.poisonVal = s.poisonVal;
    this.poisonShadow = s.poisonShadow;
    this.hinting.restore(s.hinting);
    Object.assign(this.counters_, s.counters, { requests: { ...s.counters.requests } });
    this.diagnostics.restoreCounts(s.diagnosticsTotal, s.diagnosticsByKind);
    this.tracker.restore(s.inflatedBitmap);
    if (s.active && queues) {
      this.roles = queueLayout(s.negotiated);
      this.queues = queues;
      this.active = true;
    } else {
      this.active = false;
      this.roles = [];
      this.queues = [];
    }
    this.statsq.restore(s.stats);
  }
}

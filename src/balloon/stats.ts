/**
 * Memory statistics (STATS_VQ, bit 1; virtio 1.2 §5.5.6.3). The stats queue is driven by the device:
 * the driver keeps ONE buffer of {le16 tag, le64 val} entries available; the device holds it and, on each
 * polling tick (interval set by the host in seconds, 0 = off) or on `request()`, returns it used (len 0);
 * the driver then collects fresh statistics into a new buffer and makes it available. Every buffer
 * received is parsed, timestamped and emitted as a `stats` event. Unknown tags are ignored (the device
 * MUST ignore them) but listed in the sample.
 */
import type { DescriptorChain } from "../virtio/chain.js";
import { readSegments } from "../memory/access.js";
import { PAGE_SIZE, type HandlerContext } from "./context.js";

/** All 16 Linux tags; the index is the tag. */
export const STATS_TAGS = [
  "SWAP_IN", "SWAP_OUT", "MAJFLT", "MINFLT", "MEMFREE", "MEMTOT", "AVAIL", "CACHES",
  "HTLB_PGALLOC", "HTLB_PGFAIL", "OOM_KILL", "ALLOC_STALL", "ASYNC_SCAN", "DIRECT_SCAN",
  "ASYNC_RECLAIM", "DIRECT_RECLAIM",
] as const;
export type StatName = (typeof STATS_TAGS)[number];

export const STATS_ENTRY_BYTES = 10;
/** Polling interval bounds: a timer needs >= 1 ms, and JS timers fire at once past 2^31-1 ms. */
export const STATS_INTERVAL_MIN_MS = 1;
export const STATS_INTERVAL_MAX_MS = 2 ** 31 - 1;

/** A positive interval (seconds) a polling timer can honour. */
export function statsIntervalInRange(seconds: number): boolean {
  return Number.isFinite(seconds) && seconds * 1000 >= STATS_INTERVAL_MIN_MS && seconds * 1000 <= STATS_INTERVAL_MAX_MS;
}
/** More than every known tag several times over; longer buffers are parsed up to this. */
export const STATS_MAX_BYTES = 4096;

export interface StatsEntry {
  tag: number;
  /** null for a tag this device does not know. */
  name: StatName | null;
  /** The le64 value (as a JS number: exact up to 2^53). */
  value: number;
}

export interface StatsSample {
  /** Clock time (ms) the buffer was received. */
  time: number;
  /** Known tags by name (last entry wins if a tag repeats). */
  values: Partial<Record<StatName, number>>;
  /** Every entry in buffer order. */
  entries: StatsEntry[];
  /** MEMFREE / MEMTOT / AVAIL in 4 KiB pages (when present). */
  freePages?: number;
  totalPages?: number;
  availablePages?: number;
}

export function parseStats(bytes: Uint8Array, time: number): StatsSample {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: StatsEntry[] = [];
  const values: Partial<Record<StatName, number>> = {};
  for (let o = 0; o + STATS_ENTRY_BYTES <= bytes.length; o += STATS_ENTRY_BYTES) {
    const tag = v.getUint16(o, true);
    const value = Number(v.getBigUint64(o + 2, true));
    const name = tag < STATS_TAGS.length ? STATS_TAGS[tag]! : null;
    entries.push({ tag, name, value });
    if (name) values[name] = value;
  }
  const sample: StatsSample = { time, values, entries };
  if (values.MEMFREE !== undefined) sample.freePages = Math.floor(values.MEMFREE / PAGE_SIZE);
  if (values.MEMTOT !== undefined) sample.totalPages = Math.floor(values.MEMTOT / PAGE_SIZE);
  if (values.AVAIL !== undefined) sample.availablePages = Math.floor(values.AVAIL / PAGE_SIZE);
  return sample;
}

export interface StatsState {
  intervalSeconds: number;
  heldHead: number | null;
  latest: StatsSample | null;
}

interface Pending {
  resolve(s: StatsSample): void;
  reject(e: Error): void;
  timer: unknown;
}

export class Stats {
  private heldHead: number | null = null;
  private intervalS = 0;
  private timer: unknown = null;
  private latestSample: StatsSample | null = null;
  private pending: Pending[] = [];

  constructor(
    private readonly ctx: HandlerContext,
    /** Is the stats queue live (negotiated and DRIVER_OK)? */
    private readonly live: () => boolean,
    /** Return the held buffer used (len 0) and interrupt. */
    private readonly release: (head: number) => void,
  ) {}

  get latest(): StatsSample | null {
    return this.latestSample;
  }

  get intervalSeconds(): number {
    return this.intervalS;
  }

  get holding(): boolean {
    return this.heldHead !== null;
  }

  /**
   * Polling interval in seconds (0 = off). Takes effect at once. Outside 1 ms .. 2^31-1 ms it is clamped
   * into that range; NaN or negative is refused (the interval stays); both with a host diagnostic.
   */
  setInterval(seconds: number): void {
    let s = seconds;
    if (s !== 0 && !statsIntervalInRange(s)) {
      const ok = typeof s === "number" && s > 0;
      const clamped = ok ? Math.min(STATS_INTERVAL_MAX_MS, Math.max(STATS_INTERVAL_MIN_MS, s * 1000)) / 1000 : this.intervalS;
      this.ctx.diag.emit("stats-interval-out-of-range", `stats interval ${String(seconds)} s is not 0 (off) or within ${STATS_INTERVAL_MIN_MS} ms .. ${STATS_INTERVAL_MAX_MS} ms; ${ok ? `clamped to ${clamped} s` : "refused, unchanged"}`, { requested: String(seconds), set: clamped });
      s = clamped;
    }
    this.applyInterval(s);
  }

  private applyInterval(s: number): void {
    if (this.timer !== null) this.ctx.clock.clearInterval(this.timer);
    this.timer = null;
    this.intervalS = s;
    if (s > 0) this.timer = this.ctx.clock.setInterval(() => this.tick(), s * 1000);
  }

  /** A polling tick: hand the held buffer back so the driver refills it. */
  tick(): boolean {
    if (!this.live() || this.heldHead === null) return false;
    const head = this.heldHead;
    this.heldHead = null;
    this.release(head);
    return true;
  }

  /**
   * Ask the driver for fresh statistics; resolves with the next sample received, rejects after
   * `timeoutMs` (0 = never) or if the queue is not live or the device is reset.
   */
  request(timeoutMs = 5000): Promise<StatsSample> {
    if (!this.live()) return Promise.reject(new Error("balloon: stats queue not live (STATS_VQ not negotiated, or driver not ready)"));
    return new Promise<StatsSample>((resolve, reject) => {
      const p: Pending = { resolve, reject, timer: null };
      if (timeoutMs > 0) {
        p.timer = this.ctx.clock.setTimeout(() => {
          this.pending = this.pending.filter((x) => x !== p);
          reject(new Error(`balloon: no stats from the driver within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.push(p);
      this.tick();
    });
  }

  /** One chain on the stats queue. Returns null: the buffer is held (not returned) until the next tick. */
  handle(chain: DescriptorChain, queue: number): number | null {
    const { ctx } = this;
    ctx.counters.requests.stats++;
    if (chain.writable.length > 0) {
      ctx.diag.emit("unexpected-writable", `stats buffer (head ${chain.head}) has ${chain.writableBytes} device-writable bytes; ignored`, { head: chain.head, writableBytes: chain.writableBytes }, queue);
    }
    if (chain.readableBytes % STATS_ENTRY_BYTES !== 0) {
      ctx.diag.emit("stats-buffer-misaligned", `stats buffer (head ${chain.head}) is ${chain.readableBytes} bytes, not a multiple of ${STATS_ENTRY_BYTES}; the whole entries are used`, { head: chain.head, readableBytes: chain.readableBytes }, queue);
    }
    if (this.heldHead !== null) {
      ctx.diag.emit("stats-extra-buffer", `stats buffer (head ${chain.head}) made available while the device still holds head ${this.heldHead}; the older one is returned`, { head: chain.head, held: this.heldHead }, queue);
      const old = this.heldHead;
      this.heldHead = null;
      this.release(old);
    }
    const sample = parseStats(readSegments(ctx.mem, chain.readable, STATS_MAX_BYTES), ctx.clock.now());
    this.latestSample = sample;
    ctx.counters.statsSamples++;
    this.heldHead = chain.head;
    const waiting = this.pending;
    this.pending = [];
    for (const p of waiting) {
      if (p.timer !== null) ctx.clock.clearTimeout(p.timer);
      p.resolve(sample);
    }
    ctx.events.emit("stats", sample);
    return null;
  }

  /** Device reset: the held buffer is gone with the queue; waiting requests fail. The interval stays. */
  reset(): void {
    this.heldHead = null;
    const waiting = this.pending;
    this.pending = [];
    for (const p of waiting) {
      if (p.timer !== null) this.ctx.clock.clearTimeout(p.timer);
      p.reject(new Error("balloon: device reset while waiting for stats"));
    }
  }

  /** Stop the polling timer (device disposed). */
  dispose(): void {
    if (this.timer !== null) this.ctx.clock.clearInterval(this.timer);
    this.timer = null;
  }

  save(): StatsState {
    return { intervalSeconds: this.intervalS, heldHead: this.heldHead, latest: this.latestSample };
  }

  /** Commit a state checked by persist.ts parseState. */
  restore(s: StatsState): void {
    this.heldHead = s.heldHead;
    this.latestSample = s.latest;
    this.applyInterval(s.intervalSeconds);
  }
}

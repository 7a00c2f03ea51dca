/**
 * The host-facing part of the balloon: everything `BalloonHost` (src/host/balloon-host.ts) uses, and
 * nothing of the transport-facing backend. `BalloonDevice` implements it.
 */
import type { DeviceCounters } from "./context.js";
import type { FaultName } from "./fault-modes.js";
import type { BalloonEvents } from "./events.js";
import type { HintingState } from "./hinting.js";
import type { StatsSample } from "./stats-sample.js";

export interface BalloonCounters extends DeviceCounters {
  /** Diagnostics emitted (all kinds). */
  diagnostics: number;
  /** Diagnostics per kind. */
  diagnosticsByKind: Record<string, number>;
  /** Pages in the balloon right now, by the device's own tracking bitmap. */
  inflatedPages: number;
  /** How many times each fault-injection mode acted (run-time faults of faults.ts). */
  faults: Partial<Record<FaultName, number>>;
  /**
   * Host work per notify, in guest pages the device may scan or fill (+1 per chain): the last notify's,
   * the largest so far, and how many notifies ran out of budget and continued in a later host task.
   */
  notifyWork: { last: number; max: number; deferred: number };
}

export interface BalloonControl {
  /** Guest RAM in 4 KiB pages. */
  readonly ramPages: number;
  /** num_pages (the balloon target), and setting it (clamped to RAM, diagnosed); returns the value set. */
  readonly target: number;
  setTarget(pages: number): number;
  /** `actual` as the driver wrote it, clamped to RAM. */
  readonly actual: number;
  /** Pages in the balloon by the device's tracking bitmap. */
  readonly inflatedPages: number;
  /** DRIVER_OK seen (and no reset since). */
  readonly live: boolean;
  readonly offeredBits: bigint;
  readonly negotiatedBits: bigint;
  /** Features asked for but not offered because a feature they require is off. */
  readonly offerWarnings: readonly string[];
  readonly latestStats: StatsSample | null;
  requestStats(timeoutMs?: number): Promise<StatsSample>;
  setStatsInterval(seconds: number): void;
  readonly statsIntervalSeconds: number;
  startHinting(): number | null;
  stopHinting(): void;
  finishHinting(): void;
  readonly hintingState: Readonly<HintingState>;
  counters(): BalloonCounters;
  on<K extends keyof BalloonEvents>(name: K, fn: (e: BalloonEvents[K]) => void): () => void;
  off<K extends keyof BalloonEvents>(name: K, fn: (e: BalloonEvents[K]) => void): void;
}

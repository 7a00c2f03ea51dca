/** One statistics sample from the stats queue (a leaf module: the events carry it, stats.ts parses it). */

/** All 16 Linux tags; the index is the tag. */
export const STATS_TAGS = [
  "SWAP_IN", "SWAP_OUT", "MAJFLT", "MINFLT", "MEMFREE", "MEMTOT", "AVAIL", "CACHES",
  "HTLB_PGALLOC", "HTLB_PGFAIL", "OOM_KILL", "ALLOC_STALL", "ASYNC_SCAN", "DIRECT_SCAN",
  "ASYNC_RECLAIM", "DIRECT_RECLAIM",
] as const;
export type StatName = (typeof STATS_TAGS)[number];

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

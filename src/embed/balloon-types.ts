import type { BalloonHost } from "../host/balloon-host.js";

/**
 * The slice of the host API (`src/host/balloon-host.ts`) the demo and the embed use.
 * Kept structural so the UI builds whether or not the balloon is wired into the browser VM.
 */
export interface BalloonCountersLike {
  pagesInflated: number;
  pagesDeflated: number;
  pagesReported: number;
  pagesHinted: number;
  bytesZeroed: number;
  requests?: number;
  diagnostics?: number;
}

export interface BalloonStatsLike {
  time?: number;
  values?: Partial<Record<string, number>>;
  [tag: string]: unknown;
}

/** The balloon's host API as the UI sees it. */
export type BalloonLike = BalloonHost;

/** A stats sample's values in bytes by lower-case Linux tag name (memfree, memtot, avail, caches, ...). */
export function statsValues(s: BalloonStatsLike | null | undefined): Record<string, number> {
  if (!s) return {};
  const src = (s.values && typeof s.values === "object" ? s.values : s) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(src)) if (typeof v === "number" && k !== "timestamp" && k !== "time") out[k.toLowerCase()] = v;
  return out;
}

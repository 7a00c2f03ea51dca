import type { BalloonHost } from "../host/balloon-host.js";

/** A stats sample as far as the UI reads it. */
export interface BalloonStatsLike {
  time?: number;
  values?: Partial<Record<string, number>>;
}

/** The balloon's host API as the UI sees it. */
export type BalloonLike = BalloonHost;

/** A stats sample's values in bytes by lower-case Linux tag name (memfree, memtot, avail, caches, ...). */
export function statsValues(s: BalloonStatsLike | null | undefined): Record<string, number> {
  if (!s) return {};
  const src = (s.values ?? {}) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(src)) if (typeof v === "number" && k !== "timestamp" && k !== "time") out[k.toLowerCase()] = v;
  return out;
}

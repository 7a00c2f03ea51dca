/**
 * The host's floor: how much memory the balloon always leaves to the guest, so that a target set from a
 * UI (slider, `mount()`, the Node API) can never starve the guest into "Out of puff" loops, OOM kills of
 * its shell or "Kernel panic - not syncing: System is deadlocked on memory".
 *
 * `floor` option (BalloonHost, attachBalloon, mount(), `<v86-balloon-vm floor=...>`):
 *   "auto" (default)  from the stats queue when the guest has sent a sample with MemAvailable:
 *                       largest balloon = balloon size at that sample + MemAvailable − margin
 *                     (MemAvailable is what the guest can give up without swapping; Linux already keeps
 *                     its own min_free_kbytes watermarks out of it), margin = max(16 MiB, RAM / 16);
 *                     before any such sample: the balloon leaves max(48 MiB, RAM / 4) to the guest.
 *   a number          bytes the balloon always leaves to the guest (0 = no floor); as text (URL parameter,
 *                     attribute) a size in MiB: "64", "64M", "64MiB".
 *   "off"             no floor (targets are clamped to RAM only): for tests that starve the guest on purpose.
 */
import { PAGE_SIZE } from "../balloon/context.js";
import type { StatsSample } from "../balloon/stats.js";

export type FloorOption = "auto" | "off" | number;

export const FLOOR_MARGIN_MIN_BYTES = 16 << 20;
export const FLOOR_RESERVE_MIN_BYTES = 48 << 20;

/** The largest target the host accepts now, and why. */
export interface TargetLimit {
  /** Largest balloon target, 4 KiB pages. */
  maxPages: number;
  /** Pages the balloon leaves to the guest (ramPages − maxPages). */
  reservePages: number;
  source: "stats" | "ram-fraction" | "fixed" | "off";
  /** One sentence for a status line: where the limit comes from. */
  reason: string;
}

/** A stats sample together with the balloon size (`actual`) when it arrived. */
export interface StatsAtActual {
  sample: StatsSample;
  actual: number;
}

const mib = (pages: number) => `${Math.round((pages * PAGE_SIZE) / 1048576)} MiB`;

/**
 * Parses a floor option given as text (URL parameter, attribute): "auto", "off", or a size in MiB ("64",
 * "64M", "64MiB"; like the `memory` option, a bare number is MiB: a floor of a few bytes is never meant).
 */
export function parseFloor(text: string): FloorOption {
  const t = text.trim().toLowerCase();
  if (t === "auto" || t === "") return "auto";
  if (t === "off" || t === "none") return "off";
  const m = /^(\d+)\s*(m|mib|mb)?$/.exec(t);
  if (!m) throw new Error(`floor "${text}" is not "auto", "off" or a size in MiB (e.g. "64" or "64M")`);
  return Number(m[1]) * 1048576;
}

/** A floor given as text (parseFloor) or as a value, checked; throws with what is allowed. */
export function checkFloor(floor: FloorOption | string): FloorOption {
  if (floor === "auto" || floor === "off") return floor;
  if (typeof floor === "string") return parseFloor(floor);
  if (!Number.isFinite(floor) || floor < 0) throw new Error(`floor must be "auto", "off" or a byte count >= 0 (got ${floor})`);
  return floor;
}

export function targetLimit(floor: FloorOption, ramPages: number, latest: StatsAtActual | null): TargetLimit {
  const limit = (maxPages: number, source: TargetLimit["source"], reason: string): TargetLimit => {
    const max = Math.max(0, Math.min(ramPages, Math.floor(maxPages)));
    return { maxPages: max, reservePages: ramPages - max, source, reason };
  };
  if (floor === "off") return limit(ramPages, "off", "no floor: the balloon may take all of guest RAM");
  if (typeof floor === "number") {
    checkFloor(floor);
    const reserve = Math.ceil(floor / PAGE_SIZE);
    return limit(ramPages - reserve, "fixed", `the balloon leaves at least ${mib(reserve)} to the guest (floor option)`);
  }
  const avail = latest?.sample.availablePages;
  if (latest && avail !== undefined) {
    const margin = Math.max(FLOOR_MARGIN_MIN_BYTES / PAGE_SIZE, Math.floor(ramPages / 16));
    return limit(
      latest.actual + avail - margin,
      "stats",
      `the guest can spare ${mib(latest.actual + avail)} (balloon ${mib(latest.actual)} + MemAvailable ${mib(avail)}) minus a ${mib(margin)} margin`,
    );
  }
  const reserve = Math.max(FLOOR_RESERVE_MIN_BYTES / PAGE_SIZE, Math.ceil(ramPages / 4));
  return limit(ramPages - reserve, "ram-fraction", `no memory statistics from the guest yet: the balloon leaves max(48 MiB, RAM/4) = ${mib(reserve)} to it`);
}

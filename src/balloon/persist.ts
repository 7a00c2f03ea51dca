/**
 * Save / restore of the balloon device: config fields, negotiated-dependent state, hinting cycle state,
 * stats interval (and the stats buffer the device holds), counters and the inflated-page tracking bitmap.
 * Plain JSON-compatible data (bigints as decimal strings) plus one Uint8Array; `stateToJSON` /
 * `stateFromJSON` turn the Uint8Array into base64 and back for a pure-JSON form.
 * Queue state is the transport's business (Virtqueue.saveState).
 *
 * A saved state is input too: `parseState` validates every field and throws a TypeError naming the first
 * bad one, so a corrupt snapshot cannot put the device in a state it could never reach.
 */
import { newCounters, type DeviceCounters } from "./context.js";
import type { HintingState, HintStatus } from "./hinting.js";
import type { StatsSample, StatsState } from "./stats.js";

export const BALLOON_STATE_VERSION = 1;

export interface BalloonDeviceState {
  version: number;
  offered: string;
  accepted: string;
  negotiated: string;
  active: boolean;
  config: { numPages: number; actual: number; actualShadow: number; poisonVal: number; poisonShadow: number };
  hinting: HintingState;
  stats: StatsState;
  counters: DeviceCounters;
  diagnostics: { total: number; byKind: Record<string, number> };
  /** One bit per guest page (LSB first): pages in the balloon. */
  inflatedBitmap: Uint8Array;
}

export interface StateParts {
  offered: bigint;
  accepted: bigint;
  negotiated: bigint;
  active: boolean;
  numPages: number;
  actualRaw: number;
  actualShadow: number;
  poisonVal: number;
  poisonShadow: number;
  hinting: HintingState;
  stats: StatsState;
  counters: DeviceCounters;
  diagnosticsTotal: number;
  diagnosticsByKind: Record<string, number>;
  inflatedBitmap: Uint8Array;
}

export function buildState(p: StateParts): BalloonDeviceState {
  return {
    version: BALLOON_STATE_VERSION,
    offered: p.offered.toString(),
    accepted: p.accepted.toString(),
    negotiated: p.negotiated.toString(),
    active: p.active,
    config: { numPages: p.numPages, actual: p.actualRaw, actualShadow: p.actualShadow, poisonVal: p.poisonVal, poisonShadow: p.poisonShadow },
    hinting: { ...p.hinting },
    stats: structuredClone(p.stats),
    counters: structuredClone(p.counters),
    diagnostics: { total: p.diagnosticsTotal, byKind: { ...p.diagnosticsByKind } },
    inflatedBitmap: p.inflatedBitmap.slice(),
  };
}

function fail(field: string): never {
  throw new TypeError(`balloon: bad saved state: ${field}`);
}
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isU32 = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
const isCount = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
function big(x: unknown, field: string): bigint {
  if (typeof x !== "string" || !/^\d{1,20}$/.test(x)) fail(field);
  const v = BigInt(x);
  if (v >= 1n << 64n) fail(field);
  return v;
}

const HINT_STATUSES: readonly HintStatus[] = ["idle", "requested", "started", "driver-stopped", "stopped", "done"];

export interface ParsedState extends StateParts {}

/** Validate a saved state (from saveState, or its JSON form) for a device with `ramPages` pages. */
export function parseState(raw: unknown, ramPages: number): ParsedState {
  if (!isObj(raw)) fail("not an object");
  if (raw.version !== BALLOON_STATE_VERSION) fail(`version ${String(raw.version)} (expected ${BALLOON_STATE_VERSION})`);
  const offered = big(raw.offered, "offered");
  const accepted = big(raw.accepted, "accepted");
  const negotiated = big(raw.negotiated, "negotiated");
  if (typeof raw.active !== "boolean") fail("active");
  const c = raw.config;
  if (!isObj(c)) fail("config");
  for (const k of ["numPages", "actual", "actualShadow", "poisonVal", "poisonShadow"] as const) if (!isU32(c[k])) fail(`config.${k}`);
  if ((c.numPages as number) > ramPages) fail("config.numPages (more than RAM)");

  const h = raw.hinting;
  if (!isObj(h)) fail("hinting");
  if (!HINT_STATUSES.includes(h.status as HintStatus)) fail("hinting.status");
  for (const k of ["cmdId", "configValue"] as const) if (!isU32(h[k])) fail(`hinting.${k}`);
  for (const k of ["cycle", "cyclePages"] as const) if (!isCount(h[k])) fail(`hinting.${k}`);

  const s = raw.stats;
  if (!isObj(s)) fail("stats");
  if (!isCount(s.intervalSeconds)) fail("stats.intervalSeconds");
  if (s.heldHead !== null && !(isU32(s.heldHead) && s.heldHead < 32768)) fail("stats.heldHead");
  if (s.latest !== null && !(isObj(s.latest) && typeof s.latest.time === "number" && isObj(s.latest.values) && Array.isArray(s.latest.entries))) fail("stats.latest");

  const cnt = raw.counters;
  if (!isObj(cnt)) fail("counters");
  const counters = newCounters();
  for (const k of Object.keys(counters) as (keyof DeviceCounters)[]) {
    if (k === "requests") continue;
    if (!isCount(cnt[k])) fail(`counters.${k}`);
    (counters[k] as number) = cnt[k] as number;
  }
  if (!isObj(cnt.requests)) fail("counters.requests");
  for (const k of Object.keys(counters.requests) as (keyof DeviceCounters["requests"])[]) {
    if (!isCount(cnt.requests[k])) fail(`counters.requests.${k}`);
    counters.requests[k] = cnt.requests[k] as number;
  }

  const d = raw.diagnostics;
  if (!isObj(d) || !isCount(d.total) || !isObj(d.byKind)) fail("diagnostics");
  const byKind: Record<string, number> = {};
  for (const [k, v] of Object.entries(d.byKind)) {
    if (!isCount(v)) fail(`diagnostics.byKind.${k}`);
    byKind[k] = v;
  }

  const bm = raw.inflatedBitmap;
  if (!(bm instanceof Uint8Array) || bm.length !== Math.ceil(ramPages / 8)) fail("inflatedBitmap (size does not match guest RAM)");

  return {
    offered, accepted, negotiated, active: raw.active,
    numPages: c.numPages as number, actualRaw: c.actual as number, actualShadow: c.actualShadow as number,
    poisonVal: c.poisonVal as number, poisonShadow: c.poisonShadow as number,
    hinting: {
      status: h.status as HintStatus, cmdId: h.cmdId as number, cycle: h.cycle as number,
      cyclePages: h.cyclePages as number, configValue: h.configValue as number,
    },
    stats: { intervalSeconds: s.intervalSeconds, heldHead: s.heldHead as number | null, latest: s.latest as StatsSample | null },
    counters,
    diagnosticsTotal: d.total,
    diagnosticsByKind: byKind,
    inflatedBitmap: bm,
  };
}

/** Pure-JSON form (the bitmap as base64). */
export function stateToJSON(s: BalloonDeviceState): Record<string, unknown> {
  return { ...s, inflatedBitmap: { base64: toBase64(s.inflatedBitmap) } };
}

export function stateFromJSON(j: unknown): unknown {
  if (!isObj(j)) return j;
  const bm = j.inflatedBitmap;
  if (isObj(bm) && typeof bm.base64 === "string") return { ...j, inflatedBitmap: fromBase64(bm.base64) };
  return j;
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

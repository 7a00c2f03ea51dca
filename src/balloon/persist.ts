/**
 * Save / restore of the balloon device: config fields, negotiated-dependent state, hinting cycle state,
 * stats interval (and the stats buffer the device holds), counters and the inflated-page tracking bitmap.
 * Plain JSON-compatible data (bigints as decimal strings) plus one Uint8Array; `stateToJSON` /
 * `stateFromJSON` turn the Uint8Array into base64 and back for a pure-JSON form.
 * Queue state is the transport's business (Virtqueue.saveState).
 *
 * A saved state is input too: `parseState` validates every field and throws a StateError naming the first
 * bad one, so a corrupt snapshot cannot put the device in a state it could never reach. The checks that
 * need the transport's half (device live <=> transport live, held stats head < queue size) are in
 * src/host/snapshot.ts, which restores both as one unit.
 */
import { isObj, StateReader } from "../virtio/state.js";
import { newCounters, type DeviceCounters } from "./context.js";
import type { FaultState } from "./faults.js";
import { describeFeatures, hasFeature, validateBalloonFeatures } from "./features.js";
import type { HintingState, HintStatus } from "./hinting.js";
import { STATS_INTERVAL_MAX_MS, STATS_INTERVAL_MIN_MS, statsIntervalInRange, type StatsSample, type StatsState } from "./stats.js";

/** 2: fault-injection state saved. */
export const BALLOON_STATE_VERSION = 2;

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
  /** Fault-injection counters (dropUsedEvery) and arming (resetMidInflate). */
  faults: FaultState;
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
  faults: FaultState;
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
    faults: { resetArmed: p.faults.resetArmed, chainsSeen: { ...p.faults.chainsSeen } },
  };
}

const HINT_STATUSES: readonly HintStatus[] = ["idle", "requested", "started", "driver-stopped", "stopped", "done"];

export interface ParsedState extends StateParts {}

/** What a saved device state is checked against: the device it is restored into. */
export interface StateLimits {
  ramPages: number;
  offered: bigint;
  /** The hugeNumPages fault lets num_pages exceed RAM (the device's own snapshot must restore). */
  hugeNumPages: boolean;
}

/**
 * Validate a saved device state (from saveState, or its JSON form) for a device with these limits, without
 * changing anything. Throws StateError naming the field under `path`. Version 1 states (before fault and
 * early-notify state were saved) are read with those parts at their reset values.
 */
export function parseState(raw: unknown, limits: StateLimits, path = "device"): ParsedState {
  const r: StateReader = StateReader.root(path, raw);
  const version = r.int("version", 1, BALLOON_STATE_VERSION);
  const offered = r.u64("offered");
  if (offered !== limits.offered) {
    r.fail("offered", `made with offered features ${describeFeatures(offered).join(",")}, this device offers ${describeFeatures(limits.offered).join(",")}`);
  }
  const accepted = r.u64("accepted");
  if (accepted & ~offered) r.fail("accepted", `bits never offered: ${describeFeatures(accepted & ~offered).join(",")}`);
  const active = r.bool("active");
  const negotiated = r.u64("negotiated");
  if (active) {
    const refused = validateBalloonFeatures(negotiated, offered);
    if (refused) r.fail("negotiated", refused);
  } else if (negotiated !== 0n) {
    r.fail("negotiated", "features in force on a device that is not live");
  }

  const c = r.obj("config");
  const numPages = c.u32("numPages");
  if (numPages > limits.ramPages && !limits.hugeNumPages) c.fail("numPages", `${numPages} pages, more than guest RAM (${limits.ramPages}); only the hugeNumPages fault shows that`);

  const h = r.obj("hinting");
  const hinting: HintingState = {
    status: h.oneOf("status", HINT_STATUSES), cmdId: h.u32("cmdId"), cycle: h.count("cycle"),
    cyclePages: h.count("cyclePages"), configValue: h.u32("configValue"),
  };
  if (hinting.cmdId === 1) h.fail("cmdId", "1 is DONE, never a cycle's ID");
  if (![0, 1, hinting.cmdId].includes(hinting.configValue)) h.fail("configValue", "neither STOP, DONE nor the current command ID");

  const st: StateReader = r.obj("stats");
  const intervalSeconds = st.raw.intervalSeconds;
  if (typeof intervalSeconds !== "number" || !(intervalSeconds === 0 || statsIntervalInRange(intervalSeconds))) {
    st.fail("intervalSeconds", `${String(intervalSeconds)}: 0 (off) or ${STATS_INTERVAL_MIN_MS} ms .. ${STATS_INTERVAL_MAX_MS} ms`);
  }
  const heldHead = st.raw.heldHead === null ? null : st.int("heldHead", 0, 32767);
  if (heldHead !== null && !(active && hasFeature(negotiated, "STATS_VQ"))) st.fail("heldHead", "a stats buffer held without a live stats queue");
  const latest = st.raw.latest;
  if (latest !== null && !(isObj(latest) && typeof latest.time === "number" && isObj(latest.values) && Array.isArray(latest.entries))) st.fail("latest", "not a stats sample");

  const cnt = r.obj("counters");
  const counters = newCounters();
  for (const k of Object.keys(counters) as (keyof DeviceCounters)[]) {
    if (k !== "requests") (counters[k] as number) = cnt.count(k);
  }
  const req = cnt.obj("requests");
  for (const k of Object.keys(counters.requests) as (keyof DeviceCounters["requests"])[]) counters.requests[k] = req.count(k);

  const d = r.obj("diagnostics");
  const diagnosticsTotal = d.count("total");
  const kinds = d.obj("byKind");
  const byKind: Record<string, number> = {};
  for (const k of Object.keys(kinds.raw)) byKind[k] = kinds.count(k);

  const bm = r.raw.inflatedBitmap;
  const bytes = Math.ceil(limits.ramPages / 8);
  if (!(bm instanceof Uint8Array)) r.fail("inflatedBitmap", "not a byte array");
  if (bm.length !== bytes) r.fail("inflatedBitmap", `${bm.length} bytes, guest RAM needs ${bytes}`);
  const tail = limits.ramPages % 8;
  // Bits past the last page would be pages that can never be deflated.
  if (tail !== 0 && bm[bytes - 1]! >> tail) r.fail("inflatedBitmap", `padding bits past page ${limits.ramPages} set`);

  const f = version >= 2 ? r.obj("faults") : null;
  const faults: FaultState = { resetArmed: f ? f.bool("resetArmed") : true, chainsSeen: {} };
  if (f) {
    const seen = f.obj("chainsSeen");
    for (const k of Object.keys(seen.raw)) {
      if (!/^(0|[1-9]\d?)$/.test(k)) seen.fail(k, "not a queue index");
      faults.chainsSeen[Number(k)] = seen.count(k);
    }
  }

  return {
    offered, accepted, negotiated, active,
    numPages, actualRaw: c.u32("actual"), actualShadow: c.u32("actualShadow"), poisonVal: c.u32("poisonVal"), poisonShadow: c.u32("poisonShadow"),
    hinting,
    stats: { intervalSeconds, heldHead, latest: latest as StatsSample | null },
    counters, diagnosticsTotal, diagnosticsByKind: byKind, inflatedBitmap: bm, faults,
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

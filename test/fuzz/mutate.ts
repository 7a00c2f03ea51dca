/**
 * Hostile saved states: a saved state mutated the way a corrupt file, a hand-edited snapshot or an attacker
 * would: fields deleted, retyped, pushed past their ranges, made inconsistent with each other (features
 * never offered, bit 6 without bit 5, queues enabled on rings outside RAM), the bitmap cut or padded, the
 * JSON truncated. One to three mutations per state.
 */
import type { SavedState } from "./rig.js";

type Rand = () => number;

const HOSTILE: unknown[] = [
  null, undefined, NaN, Infinity, -Infinity, -1, -0, 0.5, 1.5, 2 ** 16, 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 2,
  1e300, "1e3", "0x10", "", "18446744073709551616", "340282366920938463463374607431768211456", "-1", " 1", true, false,
  {}, [], [1, 2, 3], { a: 1 }, "x".repeat(1000),
];

function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

type Path = Array<string | number>;

function leaves(o: unknown, path: Path = [], out: Path[] = []): Path[] {
  if (o !== null && typeof o === "object") {
    out.push(path);
    for (const [k, v] of Object.entries(o)) leaves(v, [...path, Array.isArray(o) ? Number(k) : k], out);
  } else out.push(path);
  return out;
}

function parentOf(root: Record<string, unknown>, path: Path): [Record<string | number, unknown>, string | number] | null {
  if (path.length === 0) return null;
  let o: unknown = root;
  for (const k of path.slice(0, -1)) {
    if (o === null || typeof o !== "object") return null;
    o = (o as Record<string | number, unknown>)[k];
  }
  if (o === null || typeof o !== "object") return null;
  return [o as Record<string | number, unknown>, path[path.length - 1]!];
}

/** Semantic mutations: values each of the right type, but a state the registers can never reach. */
const SEMANTIC: Array<(s: Record<string, any>, r: Rand) => void> = [
  (s) => { s.device.negotiated = (BigInt(s.device.negotiated || "0") | (1n << 40n)).toString(); },
  (s) => { s.transport.negotiated = (BigInt(s.transport.negotiated || "0") ^ (1n << 4n)).toString(); },
  (s) => { s.device.negotiated = s.transport.negotiated = s.transport.driverFeatures = ((1n << 32n) | (1n << 6n)).toString(); s.device.active = true; s.transport.status = 15; },
  (s) => { s.device.offered = "0"; },
  (s) => { s.device.stats.heldHead = 1000; },
  (s, r) => { s.device.stats.heldHead = Math.floor(r() * 512); },
  (s) => { s.device.stats.intervalSeconds = 30 * 24 * 3600; },
  (s) => { s.device.stats.intervalSeconds = 1e-9; },
  (s) => { s.transport.status = 4; },
  (s) => { s.transport.status |= 64; },
  (s, r) => { s.transport.queueSelect = Math.floor(r() * 70000); },
  (s, r) => { const q = pick(r, s.transport.queues as Record<string, unknown>[]); q.enabled = true; q.descAddr = 2 ** 40; },
  (s, r) => { const q = pick(r, s.transport.queues as Record<string, unknown>[]); q.size = 3; q.enabled = true; },
  (s, r) => { const q = pick(r, s.transport.queues as Record<string, unknown>[]); q.deviceAddr = 2 ** 53 + 2; },
  (s, r) => { const q = pick(r, s.transport.queues as Record<string, unknown>[]); q.lastAvail = 70000; },
  (s) => { s.transport.queues.pop(); },
  (s) => { s.transport.queues.push({ ...s.transport.queues[0] }); },
  (s) => { s.device.active = !s.device.active; },
  (s, r) => { s.device.config.numPages = Math.floor(r() * 2 ** 32); },
  (s) => { s.device.config.actual = 2 ** 32 - 1; },
  (s) => { s.device.hinting.status = "started"; s.device.hinting.configValue = 0; },
  (s) => { s.device.hinting.cmdId = 1; },
  (s) => { s.transport.isr = 255; },
  (s) => { s.transport.configGeneration = 4096; },
  (s) => { s.device.version = 2; },
  (s) => { s.device.counters.requests = []; },
  (s) => { s.device.stats.latest = { time: 1, values: {}, entries: [{ tag: "x" }] }; },
];

export interface Mutated { state: SavedState; what: string[] }

export function mutateState(saved: SavedState, r: Rand): Mutated {
  const what: string[] = [];
  let json = saved.json;
  let bitmap = saved.bitmap.slice();
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.08) {
      const at = Math.floor(r() * json.length);
      json = json.slice(0, at);
      what.push(`json truncated at ${at}`);
      continue;
    }
    if (k < 0.14) {
      const c = r();
      if (c < 0.3) bitmap = bitmap.slice(0, Math.floor(r() * bitmap.length));
      else if (c < 0.5) bitmap = Uint8Array.from([...bitmap, 0xff]);
      else if (bitmap.length) bitmap[bitmap.length - 1] = 0xff;
      what.push("bitmap");
      continue;
    }
    let obj: Record<string, any>;
    try {
      obj = JSON.parse(json);
    } catch {
      continue;
    }
    if (k < 0.5) {
      const m = Math.floor(r() * SEMANTIC.length);
      try {
        SEMANTIC[m]!(obj, r);
        what.push(`semantic ${m}`);
      } catch {
        what.push(`semantic ${m} not applicable`);
      }
    } else {
      const paths = leaves(obj);
      const path = pick(r, paths);
      const parent = parentOf(obj, path);
      if (!parent) {
        what.push("root replaced");
        json = JSON.stringify(pick(r, HOSTILE)) ?? "";
        continue;
      }
      const [o, key] = parent;
      if (r() < 0.25) {
        delete o[key];
        what.push(`deleted ${path.join(".")}`);
      } else {
        const v = pick(r, HOSTILE);
        o[key] = v;
        what.push(`${path.join(".")} = ${String(v).slice(0, 20)}`);
      }
    }
    // JSON cannot carry NaN/Infinity/undefined: the snapshot path turns them into null, as a real file would.
    json = JSON.stringify(obj);
  }
  return { state: { json, bitmap }, what };
}

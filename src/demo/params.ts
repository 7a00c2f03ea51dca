/**
 * The demo's URL parameters, validated before anything runs (README: "Demo URL parameters").
 * Problems come back as text for the page: `warnings` (ignored input, the page goes on) and `errors`
 * (input refused: the page does not boot with it, `?autoboot` shows them instead of booting).
 */
import { DEFAULT_FEATURES, FEATURES, findFeature, MAX_MEMORY_MIB, MIN_MEMORY_MIB, type FeatureName } from "../vocabulary.js";
import { parseFloor, type FloorOption } from "../host/floor.js";

export interface DemoParams {
  /** null: not given or refused (the page's default applies). */
  memoryMiB: number | null;
  /** null: not given (the defaults apply). */
  features: FeatureName[] | null;
  floor: FloorOption;
  autoboot: boolean;
  warnings: string[];
  errors: string[];
}

export const PARAMS = ["memory", "features", "floor", "autoboot"] as const;

/** One feature word as the vocabulary spells it, or all / default / none; null when unknown. */
function featureWord(word: string): readonly FeatureName[] | null {
  const w = word.toLowerCase();
  if (w === "all") return FEATURES.map((f) => f.name);
  if (w === "default") return DEFAULT_FEATURES;
  if (w === "none") return [];
  const f = findFeature(word);
  return f ? [f.name] : null;
}

export function parseParams(search: string): DemoParams {
  const q = new URLSearchParams(search);
  const out: DemoParams = { memoryMiB: null, features: null, floor: "auto", autoboot: q.has("autoboot"), warnings: [], errors: [] };
  const unknown = [...new Set(q.keys())].filter((k) => !(PARAMS as readonly string[]).includes(k));
  if (unknown.length) out.warnings.push(`unknown URL parameter${unknown.length > 1 ? "s" : ""} ignored: ${unknown.join(", ")} (known: ${PARAMS.join(", ")})`);

  const mem = q.get("memory");
  if (mem !== null) {
    const n = /^\d+$/.test(mem.trim()) ? Number(mem) : NaN;
    if (!Number.isInteger(n) || n < MIN_MEMORY_MIB || n > MAX_MEMORY_MIB) {
      out.errors.push(`memory=${mem} refused: guest RAM must be a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB}`);
    } else out.memoryMiB = n;
  }

  const feats = q.get("features");
  if (feats !== null) {
    const chosen = new Set<FeatureName>();
    const bad: string[] = [];
    for (const word of feats.split(/[\s,;]+/).filter(Boolean)) {
      const names = featureWord(word);
      if (names) names.forEach((n) => chosen.add(n));
      else bad.push(word);
    }
    if (bad.length) out.warnings.push(`unknown balloon feature${bad.length > 1 ? "s" : ""} ignored: ${bad.join(", ")} (known: ${FEATURES.map((f) => f.name).join(", ")})`);
    out.features = FEATURES.map((f) => f.name).filter((n) => chosen.has(n));
  }

  const floor = q.get("floor");
  if (floor !== null) {
    try {
      out.floor = parseFloor(floor);
    } catch (e) {
      out.errors.push(`floor=${floor} refused: ${(e as Error).message}`);
    }
  }
  return out;
}

/** The query string that boots the same machine again (Reboot). */
export function paramsFor(memoryMiB: number, features: readonly FeatureName[], floor: FloorOption): string {
  const q = new URLSearchParams({ memory: String(memoryMiB), features: features.join(",") || "none" });
  if (floor !== "auto") q.set("floor", floor === "off" ? "off" : `${Math.round(floor / 1048576)}M`);
  return `?${q.toString().replace(/%2C/g, ",")}&autoboot`;
}

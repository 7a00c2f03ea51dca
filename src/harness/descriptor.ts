/**
 * Test descriptors: what a test needs from the device and the host, written as header comments at the
 * top of the guest shell script (the first block of `#` lines, after an optional `#!`):
 *
 *   #!/bin/sh
 *   # test: inflate/deflate keeps a 32 MiB pattern intact
 *   # features: stats,deflate-on-oom      offer exactly these (or "default", or edits: +reporting,-hint)
 *   # fault: lie-about-init               device fault mode (repeatable; comma list; NAME=VALUE for valued ones)
 *   # memory: 192M                        guest RAM (MiB; default 128)
 *   # cmdline: init_on_free=1             appended to the kernel command line
 *   # timeout: 90s                        per-test timeout (ms, or s/m suffix)
 *   # boot: fresh                         own guest instead of sharing one with same-config tests
 *   # allow-diagnostic: inflate-already-inflated      device diagnostics that do not fail the test
 *   # expect-diagnostic: deflate-not-inflated         diagnostics that MUST appear (else failure)
 *   # host: target 32M                    host step run before the script starts (repeatable)
 *   # skip: needs a bit-7 kernel          skip the test
 *
 * Unknown `# key: value` lines are prose and ignored. Sizes: `K`/`M`/`G` suffix = bytes, a bare number in a
 * host step = 4 KiB pages.
 */
import type { BalloonFaults, ConfigStorm } from "../balloon/context.js";
import { OPTIONAL_FEATURES, type FeatureOffer, type OptionalFeatureName } from "../balloon/features.js";
import type { BootConfig } from "./types.js";

export interface TestDescriptor {
  name?: string;
  /** Feature edits relative to the run's default offer. */
  features?: FeatureSpec;
  faults: string[];
  memoryMiB?: number;
  cmdline?: string;
  timeoutMs?: number;
  fresh: boolean;
  allowDiagnostics: string[];
  expectDiagnostics: string[];
  hostSteps: string[];
  skip?: string;
}

/** `exact` = offer only `on`; otherwise apply `on`/`off` to the base offer. `null` on = device default. */
export interface FeatureSpec {
  exact: boolean;
  on: OptionalFeatureName[];
  off: OptionalFeatureName[];
}

const FEATURE_ALIASES: Record<string, OptionalFeatureName> = {
  "must-tell-host": "MUST_TELL_HOST",
  "tell-host": "MUST_TELL_HOST",
  stats: "STATS_VQ",
  "stats-vq": "STATS_VQ",
  "deflate-on-oom": "DEFLATE_ON_OOM",
  oom: "DEFLATE_ON_OOM",
  hint: "FREE_PAGE_HINT",
  hinting: "FREE_PAGE_HINT",
  "free-page-hint": "FREE_PAGE_HINT",
  poison: "PAGE_POISON",
  "page-poison": "PAGE_POISON",
  reporting: "PAGE_REPORTING",
  "page-reporting": "PAGE_REPORTING",
  "init-reported": "DEVICE_INIT_REPORTED",
  "device-init-reported": "DEVICE_INIT_REPORTED",
  bit6: "DEVICE_INIT_REPORTED",
  "init-on-inflate": "DEVICE_INIT_ON_INFLATE",
  "device-init-on-inflate": "DEVICE_INIT_ON_INFLATE",
  bit7: "DEVICE_INIT_ON_INFLATE",
};

/** Short names, as the CLI and descriptors print them. */
export const FEATURE_SHORT: Record<OptionalFeatureName, string> = {
  MUST_TELL_HOST: "must-tell-host",
  STATS_VQ: "stats",
  DEFLATE_ON_OOM: "deflate-on-oom",
  FREE_PAGE_HINT: "hint",
  PAGE_POISON: "poison",
  PAGE_REPORTING: "reporting",
  DEVICE_INIT_REPORTED: "init-reported",
  DEVICE_INIT_ON_INFLATE: "init-on-inflate",
};

export function featureByName(name: string): OptionalFeatureName {
  const key = name.trim().toLowerCase().replace(/_/g, "-").replace(/^virtio-balloon-f-/, "");
  const upper = key.toUpperCase().replace(/-/g, "_") as OptionalFeatureName;
  if (FEATURE_ALIASES[key]) return FEATURE_ALIASES[key];
  if ((OPTIONAL_FEATURES as readonly string[]).includes(upper)) return upper;
  throw new Error(`unknown feature ${JSON.stringify(name)}; known: ${Object.values(FEATURE_SHORT).join(", ")}`);
}

/** `"stats,reporting"` (exact), `"default"`, `"none"`, `"+reporting,-hint"` (edits), mixed lists are edits. */
export function parseFeatureSpec(text: string): FeatureSpec {
  const items = text.split(/[\s,]+/).filter(Boolean);
  if (items.length === 1 && items[0].toLowerCase() === "default") return { exact: false, on: [], off: [] };
  if (items.length === 1 && items[0].toLowerCase() === "none") return { exact: true, on: [], off: [] };
  const edits = items.some((i) => i.startsWith("+") || i.startsWith("-"));
  const on: OptionalFeatureName[] = [];
  const off: OptionalFeatureName[] = [];
  for (const i of items) {
    if (i.startsWith("-")) off.push(featureByName(i.slice(1)));
    else on.push(featureByName(i.replace(/^\+/, "")));
  }
  return { exact: !edits, on, off };
}

/** Applies specs in order (CLI first, then the test's own) to the device default (everything offered). */
export function resolveFeatures(...specs: (FeatureSpec | undefined)[]): FeatureOffer {
  const offer: FeatureOffer = {};
  for (const f of OPTIONAL_FEATURES) offer[f] = true;
  for (const s of specs) {
    if (!s) continue;
    if (s.exact) for (const f of OPTIONAL_FEATURES) offer[f] = false;
    for (const f of s.on) offer[f] = true;
    for (const f of s.off) offer[f] = false;
  }
  return offer;
}

export function describeOffer(offer: FeatureOffer): string {
  const on = OPTIONAL_FEATURES.filter((f) => offer[f] ?? true).map((f) => FEATURE_SHORT[f]);
  return on.length ? on.join(",") : "none";
}

/** Fault names as the device spells them (`BalloonFaults` keys), with kebab-case and short aliases. */
export const KNOWN_FAULTS = [
  "lieAboutInit", "setPaddingBits", "shortReportUsedLength", "scribbleReported",
  "delayUsedMs", "dropUsedEvery", "withholdInterrupts", "hugeNumPages", "configStorm", "resetMidInflate",
] as const;
const FAULT_ALIASES: Record<string, string> = {
  "lie-init": "lieAboutInit",
  lie: "lieAboutInit",
  "padding-bits": "setPaddingBits",
  "short-report": "shortReportUsedLength",
  "short-used-length": "shortReportUsedLength",
  "delay-used": "delayUsedMs",
  "drop-used": "dropUsedEvery",
};

/** Faults that take a value (`delay-used=250`): its syntax, what a bare name means, and its parser. */
const FAULT_VALUES: Record<string, { syntax: string; bare: string; parse(v: string): BalloonFaults[keyof BalloonFaults] }> = {
  delayUsedMs: { syntax: "MS", bare: "500", parse: (v) => parseDuration(v) },
  dropUsedEvery: {
    syntax: "N",
    bare: "4",
    parse: (v) => {
      if (!/^[1-9]\d*$/.test(v)) throw new Error(`want a whole number >= 1, got ${JSON.stringify(v)}`);
      return Number(v);
    },
  },
  configStorm: {
    syntax: "COUNT@MS[+toggle]",
    bare: "200@10",
    parse: (v): ConfigStorm => {
      const m = /^([1-9]\d*)@(\d+)(?:ms)?(\+toggle)?$/i.exec(v);
      if (!m) throw new Error(`want COUNT@MS[+toggle] (e.g. 200@10+toggle), got ${JSON.stringify(v)}`);
      return { count: Number(m[1]), intervalMs: Math.max(1, Number(m[2])), toggle: m[3] !== undefined };
    },
  },
};

/**
 * Canonical form of a fault: its `BalloonFaults` key, with `=value` for the faults that take one (a bare
 * name gets the default value, so a run's boot configuration says what it used). Throws on unknown names
 * and bad values.
 */
export function faultByName(name: string): string {
  const [rawName = "", ...rest] = name.trim().split("=");
  const value = rest.length ? rest.join("=").trim() : null;
  const n = rawName.trim();
  const camel = FAULT_ALIASES[n.toLowerCase()] ?? n.replace(/[-_]+([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
  const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  if (!(KNOWN_FAULTS as readonly string[]).includes(camel)) {
    throw new Error(
      `unknown fault ${JSON.stringify(name)}; known: ${KNOWN_FAULTS.map(kebab).join(", ")} (aliases: ${Object.keys(FAULT_ALIASES).join(", ")})`,
    );
  }
  const valued = FAULT_VALUES[camel];
  if (!valued) {
    if (value !== null) throw new Error(`fault ${kebab(camel)} takes no value`);
    return camel;
  }
  const v = value ?? valued.bare;
  try {
    valued.parse(v);
  } catch (e) {
    throw new Error(`fault ${kebab(camel)}=${valued.syntax}: ${(e as Error).message}`);
  }
  return `${camel}=${v}`;
}

/** The device's `BalloonFaults` for canonical fault strings (faultByName's output; a later value wins). */
/** The VM options every launcher derives from a boot config (images are launcher-specific). */
export function bootVMOptions(boot: BootConfig, onSerial: (text: string) => void) {
  return {
    memoryMiB: boot.memoryMiB,
    bootTimeoutMs: boot.bootTimeoutMs,
    onSerial,
    ...(boot.cmdline ? { cmdline: boot.cmdline } : {}),
    ...(boot.cmdlineExtra ? { cmdlineExtra: boot.cmdlineExtra } : {}),
    balloon: { features: boot.features, faults: faultObject(boot.faults) },
  };
}

export function faultObject(faults: readonly string[]): BalloonFaults {
  const out: Record<string, unknown> = {};
  for (const f of faults) {
    const [name = "", value] = f.split(/=(.*)/s);
    const valued = FAULT_VALUES[name];
    out[name] = valued && value !== undefined ? valued.parse(value) : true;
  }
  return out as BalloonFaults;
}

/** "90s", "2m", "1500ms", "1500" (ms). */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$/i.exec(text);
  if (!m) throw new Error(`bad duration ${JSON.stringify(text)} (e.g. 90s, 2m, 1500ms)`);
  const v = Number(m[1]);
  const unit = (m[2] ?? "ms").toLowerCase();
  return Math.round(unit === "ms" ? v : unit === "s" ? v * 1000 : v * 60000);
}

/** Bytes for "64M"/"512K"/"1G"/"4096" (bare = bytes). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMG])?i?B?\s*$/i.exec(text);
  if (!m) throw new Error(`bad size ${JSON.stringify(text)} (e.g. 64M)`);
  const mult = { K: 1024, M: 1 << 20, G: 1 << 30 }[(m[2] ?? "").toUpperCase() as "K" | "M" | "G"] ?? 1;
  return Math.round(Number(m[1]) * mult);
}

/** 4 KiB pages for a host-step size: "64M" (bytes with suffix), "16384" or "16384p" (pages). */
export function parsePages(text: string): number {
  const t = text.trim();
  if (/^\d+p?$/i.test(t)) return Number(t.replace(/p$/i, ""));
  return Math.floor(parseBytes(t) / 4096);
}

function splitList(v: string): string[] {
  return v.split(/[\s,]+/).filter(Boolean);
}

export function emptyDescriptor(): TestDescriptor {
  return { faults: [], fresh: false, allowDiagnostics: [], expectDiagnostics: [], hostSteps: [] };
}

/** Reads the header comment block of a script. Throws with the line number on a bad value. */
export function parseDescriptor(script: string, file = "<script>"): TestDescriptor {
  const d = emptyDescriptor();
  const lines = script.replace(/\r/g, "").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (i === 0 && line.startsWith("#!")) continue;
    if (!line.trim()) continue;
    if (!line.startsWith("#")) break;
    const m = /^#\s*([a-z][a-z-]*)\s*:\s*(.*?)\s*$/i.exec(line);
    if (!m) continue;
    const key = m[1].toLowerCase();
    const value = m[2];
    try {
      switch (key) {
        case "test":
        case "name":
        case "description":
          d.name = value;
          break;
        case "feature":
        case "features":
          d.features = parseFeatureSpec(value);
          break;
        case "fault":
        case "faults":
          d.faults.push(...splitList(value).map((f) => faultByName(f)));
          break;
        case "memory":
        case "mem":
          d.memoryMiB = /^\d+$/.test(value) ? Number(value) : Math.round(parseBytes(value) / (1 << 20));
          if (!(d.memoryMiB >= 16 && d.memoryMiB <= 890)) throw new Error(`memory ${value}: want 16..890 MiB`);
          break;
        case "cmdline":
          d.cmdline = [d.cmdline, value].filter(Boolean).join(" ");
          break;
        case "timeout":
          d.timeoutMs = parseDuration(value);
          break;
        case "boot":
          if (!/^(fresh|shared)$/.test(value)) throw new Error(`boot: fresh or shared, got ${JSON.stringify(value)}`);
          d.fresh = value === "fresh";
          break;
        case "allow-diagnostic":
        case "allow-diagnostics":
          d.allowDiagnostics.push(...splitList(value));
          break;
        case "expect-diagnostic":
        case "expect-diagnostics":
          d.expectDiagnostics.push(...splitList(value));
          break;
        case "host":
          d.hostSteps.push(value);
          break;
        case "skip":
          d.skip = value || "skipped";
          break;
        default:
          // prose such as "# Note: ..." is not a descriptor line
          break;
      }
    } catch (e) {
      throw new Error(`${file}:${i + 1}: ${(e as Error).message}`);
    }
  }
  return d;
}

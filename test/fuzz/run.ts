/**
 * Fuzz runs: episodes of generated operations on fresh devices, replay of a recorded sequence, and
 * delta-debugging minimisation of a failing one (Zeller's ddmin over the operation list).
 */
import { Session, type Finding } from "./engine.js";
import { Generator, randomConfig, type Mode } from "./gen.js";
import { isRequest, toHex, type Op } from "./ops.js";
import type { RigConfig } from "./rig.js";
import { rng } from "../../devkit/rng.js";

/** A failing (or once-failing) sequence: what a regression case under test/fuzz/regressions/ holds. */
export interface Repro {
  /** What it shows, in words. */
  title?: string;
  cls: string;
  message: string;
  config: RigConfig;
  ops: Op[];
}

export interface RunOptions {
  seed: number;
  mode: Mode;
  /** Stop after this many requests ... */
  requests?: number;
  /** ... or after this many seconds (wall clock: only the run's length, never an invariant). */
  seconds?: number;
  /** Requests per episode (fresh devices, new configuration) (default 1500). */
  episodeRequests?: number;
  onFinding?: (r: Repro) => void;
}

export interface RunSummary {
  requests: number;
  episodes: number;
  /** Distinct defect classes found, one repro each. */
  findings: Repro[];
  /** Occurrences of findings (all classes, all episodes). */
  occurrences: number;
  restoreMutations: number;
  exactNotifies: number;
  inexactNotifies: number;
  seconds: number;
}

export async function fuzz(opts: RunOptions): Promise<RunSummary> {
  const start = Date.now();
  const perEpisode = opts.episodeRequests ?? 1500;
  const seen = new Map<string, Repro>();
  const s: RunSummary = { requests: 0, episodes: 0, findings: [], occurrences: 0, restoreMutations: 0, exactNotifies: 0, inexactNotifies: 0, seconds: 0 };
  const done = () => (opts.requests !== undefined && s.requests >= opts.requests) || (opts.seconds !== undefined && Date.now() - start >= opts.seconds * 1000);
  for (let ep = 0; !done(); ep++) {
    const r = rng((opts.seed * 0x9e3779b1 + ep * 0x85ebca6b) >>> 0);
    const config = randomConfig(r);
    const session = await Session.create(config);
    const gen = new Generator(r, config, opts.mode);
    const ops: Op[] = [];
    let reported = 0;
    const collect = () => {
      for (const f of session.findings.slice(reported)) {
        s.occurrences++;
        if (seen.has(f.cls)) continue;
        const repro: Repro = { cls: f.cls, message: f.message, config, ops: ops.slice(0, f.op + 1) };
        seen.set(f.cls, repro);
        opts.onFinding?.(repro);
      }
      reported = session.findings.length;
    };
    while (session.requests < perEpisode && !done()) {
      for (const op of gen.next(session.a)) {
        ops.push(op);
        await session.apply(op);
        if (op.t === "mut") s.restoreMutations++;
      }
      if (session.findings.length > reported) collect();
      if (s.requests + session.requests >= (opts.requests ?? Infinity)) break;
    }
    await session.finalChecks();
    ops.push({ t: "r", o: 0x14, w: 1 }); // the final check's index points past the last op: keep one there
    collect();
    s.requests += session.requests;
    s.exactNotifies += session.exact;
    s.inexactNotifies += session.inexact;
    s.episodes++;
  }
  s.findings = [...seen.values()];
  s.seconds = (Date.now() - start) / 1000;
  return s;
}

/** Replay a sequence on fresh devices; every finding it shows. */
export async function replay(config: RigConfig, ops: readonly Op[]): Promise<Finding[]> {
  const session = await Session.create(config);
  for (const op of ops) await session.apply(op);
  await session.finalChecks();
  return session.findings;
}

/**
 * Shortest sequence (1-minimal by ddmin, within `budgetMs`) that still shows a finding of class `cls`.
 */
export async function minimize(repro: Repro, budgetMs = 30_000): Promise<Repro> {
  const start = Date.now();
  const fails = async (ops: Op[]) => (await replay(repro.config, ops)).some((f) => f.cls === repro.cls);
  let ops = repro.ops.slice();
  if (!(await fails(ops))) return repro;
  let n = 2;
  while (ops.length >= 2 && Date.now() - start < budgetMs) {
    const chunk = Math.ceil(ops.length / n);
    let reduced = false;
    for (let i = 0; i < ops.length && Date.now() - start < budgetMs; i += chunk) {
      const complement = [...ops.slice(0, i), ...ops.slice(i + chunk)];
      if (complement.length && (await fails(complement))) {
        ops = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= ops.length) break;
      n = Math.min(ops.length, n * 2);
    }
  }
  ops = await concretize(repro.config, ops);
  const last = (await replay(repro.config, ops)).find((f) => f.cls === repro.cls);
  return { ...repro, message: last?.message ?? repro.message, ops };
}

export function requestCount(ops: readonly Op[]): number {
  return ops.filter(isRequest).length;
}

/** The same sequence with every seeded hostile restore (`mut`) replaced by the exact state it restored. */
export async function concretize(config: RigConfig, ops: readonly Op[]): Promise<Op[]> {
  const session = await Session.create(config);
  const out: Op[] = [];
  for (const op of ops) {
    await session.apply(op);
    const st = session.lastRestored;
    out.push(op.t === "mut" && st ? { t: "restore", j: st.json, b: toHex(st.bitmap) } : op);
    session.lastRestored = null;
  }
  return out;
}

/** A repro case as JSON with one operation per line (readable in a diff, one op per register write). */
export function formatRepro(r: Repro): string {
  const { ops, ...head } = r;
  const top = JSON.stringify(head, null, 2).replace(/\n}$/, "");
  return `${top},\n  "ops": [\n${ops.map((o) => `    ${JSON.stringify(o)}`).join(",\n")}\n  ]\n}\n`;
}

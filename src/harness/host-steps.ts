/**
 * Host steps: what a guest script (or a `# host:` header line) asks the host to do, through
 * `host STEP ARGS` in /tests/lib.sh ("@@HOST STEP ARGS" on the console, answered "@@OK ..." / "@@ERR ...").
 *
 *   target SIZE               set the balloon target (SIZE: 64M / 512K / 1G bytes, or a bare page count)
 *   wait [SIZE] [TIMEOUT]     wait until the driver's `actual` equals SIZE (default: the target)
 *   inflate SIZE [TIMEOUT]    target SIZE + wait        (deflate [TIMEOUT] = inflate 0)
 *   cycles N A B [TIMEOUT]    N times: inflate A, wait, inflate B, wait (TIMEOUT per step; default 60s)
 *   actual / target           (no argument) print the current value in pages
 *   stats [TIMEOUT]           ask the driver for fresh statistics; prints NAME=value ... (bytes)
 *   counters                  the device counters as name=value ...
 *   await NAME VALUE [TIMEOUT]  wait until device counter NAME (as `counters` prints it) is >= VALUE
 *   hint start|stop           start / stop a free page hinting cycle
 *   diagnostics               diagnostics seen during this test: count and kinds
 *   sleep MS                  wait on the host
 *   log TEXT                  a marker in the transaction trace
 */
import { parseDuration, parsePages } from "./descriptor.js";
import type { BalloonHostLike } from "./types.js";

export class StepError extends Error {}

export interface StepContext {
  balloon: BalloonHostLike | null;
  /** Record a trace entry. */
  trace(event: string, fields: Record<string, unknown>): void;
  /** Diagnostics seen in the current test. */
  diagnostics(): { kind: string; severity: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function need(ctx: StepContext): BalloonHostLike {
  if (!ctx.balloon) throw new StepError("this guest has no balloon device attached (host steps need one)");
  return ctx.balloon;
}

export async function waitActual(b: BalloonHostLike, pages: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let delay = 2;
  while (b.actual !== pages) {
    if (Date.now() - t0 > timeoutMs) {
      throw new StepError(`actual stayed at ${b.actual} pages, wanted ${pages} (target ${b.target}) after ${timeoutMs} ms`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 20);
  }
  return Date.now() - t0;
}

/** Flattens an object of numbers (nested one level) into "k=v k2=v2". */
export function flatten(o: unknown, prefix = ""): string {
  if (!o || typeof o !== "object") return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") parts.push(`${prefix}${k}=${v}`);
    else if (v && typeof v === "object" && !Array.isArray(v) && !prefix) {
      const inner = flatten(v, `${k}.`);
      if (inner) parts.push(inner);
    }
  }
  return parts.join(" ");
}

function statsValues(s: unknown): Record<string, number> {
  if (!s || typeof s !== "object") return {};
  const values = (s as { values?: unknown }).values;
  const src = values && typeof values === "object" ? (values as Record<string, unknown>) : (s as Record<string, unknown>);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(src)) if (typeof v === "number" && k !== "time" && k !== "timestamp") out[k] = v;
  return out;
}

/** Runs one step; returns the reply text (after "@@OK"). Throws StepError for "@@ERR". */
export async function runHostStep(step: string, ctx: StepContext): Promise<string> {
  const [cmd, ...args] = step.trim().split(/\s+/);
  const t0 = Date.now();
  const dur = (s: string | undefined, dflt: number) => (s ? parseDuration(s) : dflt);
  try {
    switch (cmd) {
      case "target": {
        const b = need(ctx);
        if (!args[0]) return String(b.target);
        const pages = parsePages(args[0]);
        b.setTarget(pages);
        ctx.trace("host-target", { pages });
        return `target=${b.target}`;
      }
      case "wait": {
        const b = need(ctx);
        const pages = args[0] ? parsePages(args[0]) : b.target;
        const ms = await waitActual(b, pages, dur(args[1], 60000));
        ctx.trace("host-wait", { pages, ms });
        return `actual=${b.actual} ms=${ms}`;
      }
      case "inflate":
      case "deflate": {
        const b = need(ctx);
        const pages = cmd === "deflate" ? 0 : parsePages(args[0] ?? "");
        const timeout = dur(cmd === "deflate" ? args[0] : args[1], 60000);
        b.setTarget(pages);
        const ms = await waitActual(b, pages, timeout);
        ctx.trace(`host-${cmd}`, { pages, ms });
        return `actual=${b.actual} ms=${ms}`;
      }
      case "cycles": {
        const b = need(ctx);
        const n = Number(args[0]);
        if (!Number.isInteger(n) || n < 0 || args.length < 3) throw new StepError("cycles N A B [TIMEOUT]");
        const a = parsePages(args[1]);
        const c = parsePages(args[2]);
        const timeout = dur(args[3], 60000);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          for (const pages of [a, c]) {
            b.setTarget(pages);
            try {
              worst = Math.max(worst, await waitActual(b, pages, timeout));
            } catch (e) {
              throw new StepError(`cycle ${i + 1}/${n}: ${(e as Error).message}`);
            }
          }
        }
        const ms = Date.now() - t0;
        ctx.trace("host-cycles", { n, a, b: c, ms });
        return `cycles=${n} ms=${ms} per_cycle_ms=${n ? (ms / n).toFixed(2) : 0} worst_step_ms=${worst}`;
      }
      case "actual":
        return String(need(ctx).actual);
      case "stats": {
        const b = need(ctx);
        if (!b.stats) throw new StepError("this balloon host has no stats()");
        const timeout = dur(args[0], 10000);
        let sample: unknown = null;
        if (b.requestStats) {
          const before = b.stats();
          const p = b.requestStats(timeout) as unknown;
          if (p && typeof (p as Promise<unknown>).then === "function") {
            sample = await (p as Promise<unknown>);
          } else {
            const tStart = Date.now();
            while ((sample = b.stats()) === before) {
              if (Date.now() - tStart > timeout) throw new StepError(`no fresh stats sample within ${timeout} ms (STATS_VQ negotiated?)`);
              await sleep(10);
            }
          }
        } else {
          sample = b.stats();
        }
        if (!sample) throw new StepError("no stats sample (STATS_VQ negotiated?)");
        const v = statsValues(sample);
        ctx.trace("host-stats", { values: v });
        return Object.entries(v)
          .map(([k, x]) => `${k}=${x}`)
          .join(" ");
      }
      case "counters": {
        const b = need(ctx);
        if (!b.counters) throw new StepError("this balloon host has no counters()");
        return flatten(b.counters());
      }
      case "await": {
        const b = need(ctx);
        if (!b.counters || args.length < 2) throw new StepError("await NAME VALUE [TIMEOUT]");
        const want = Number(args[1]);
        const timeout = dur(args[2], 30000);
        const read = () => {
          const m = new RegExp(`(?:^| )${args[0].replace(/[.]/g, "\\.")}=(\\d+)`).exec(flatten(b.counters!()));
          if (!m) throw new StepError(`no counter ${args[0]}`);
          return Number(m[1]);
        };
        const tStart = Date.now();
        let v: number;
        while ((v = read()) < want) {
          if (Date.now() - tStart > timeout) throw new StepError(`${args[0]}=${v} < ${want} after ${timeout} ms`);
          await sleep(20);
        }
        ctx.trace("host-await", { counter: args[0], value: v, ms: Date.now() - tStart });
        return `${args[0]}=${v} ms=${Date.now() - tStart}`;
      }
      case "hint": {
        const b = need(ctx);
        if (args[0] === "start") {
          if (!b.startHinting) throw new StepError("this balloon host cannot start hinting");
          const r = b.startHinting();
          ctx.trace("host-hint", { action: "start" });
          return r === undefined ? "started" : `started ${typeof r === "object" ? JSON.stringify(r) : String(r)}`;
        }
        if (args[0] === "stop") {
          if (!b.stopHinting) throw new StepError("this balloon host cannot stop hinting");
          b.stopHinting();
          ctx.trace("host-hint", { action: "stop" });
          return "stopped";
        }
        throw new StepError("hint start|stop");
      }
      case "diagnostics": {
        const d = ctx.diagnostics();
        const kinds = [...new Set(d.map((x) => x.kind))];
        return `count=${d.length} violations=${d.filter((x) => x.severity === "violation").length} kinds=${kinds.join(",") || "-"}`;
      }
      case "sleep":
        await sleep(dur(args[0], 0));
        return "slept";
      case "log":
        ctx.trace("log", { text: args.join(" ") });
        return "logged";
      default:
        throw new StepError(`unknown host step ${JSON.stringify(cmd)} (target, wait, inflate, deflate, cycles, actual, stats, counters, hint, diagnostics, sleep, log)`);
    }
  } catch (e) {
    if (e instanceof StepError) throw e;
    throw new StepError((e as Error).message);
  }
}

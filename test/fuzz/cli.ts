/**
 * `npm run fuzz -- [options]`: fuzz the balloon device through its BAR, its host API and save/restore.
 *
 *   --seconds N      run for N seconds (default 60)            --requests N   or stop after N requests
 *   --seed S         first seed (default: from the clock; printed, so a run can be repeated)
 *   --mode M         mixed | notify | restore | both (default both: mixed and notify alternate per slice)
 *   --minimize       shrink each new finding (ddmin) and write it as a repro case
 *   --class P[,P]    with --minimize: only the findings whose class starts with one of these prefixes
 *   --out DIR        where repro cases go (default: $TMPDIR/v86-balloon-fuzz)
 *   --replay FILE    replay one repro case (JSON) and print what it finds
 *   --long           the documented long run: >= 1,000,000 requests (or --seconds), plus direct hot-path
 *                    calls, figures merged into bench/results.json (fuzz.*)
 * Exit status 1 when anything was found.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fuzzHotPath } from "./hotpath-direct.js";
import { formatRepro, fuzz, minimize, replay, type Repro, type RunSummary } from "./run.js";
import type { Mode } from "./gen.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function num(name: string, dflt: number | undefined): number | undefined {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} ${v}: expected a non-negative number`);
    process.exit(2);
  }
  return n;
}

const OPTIONS = new Set(["seconds", "requests", "seed", "mode", "minimize", "class", "out", "replay", "long"]);

async function main(): Promise<void> {
  const unknown = process.argv.slice(2).filter((a) => a.startsWith("--") && !OPTIONS.has(a.slice(2)));
  if (unknown.length) {
    console.error(`fuzz: unknown option(s) ${unknown.join(" ")}; options: ${[...OPTIONS].map((o) => `--${o}`).join(" ")} (see test/fuzz/cli.ts)`);
    process.exit(2);
  }
  const replayFile = arg("replay");
  if (replayFile) {
    const repro = JSON.parse(readFileSync(replayFile, "utf8")) as Repro;
    const found = await replay(repro.config, repro.ops);
    for (const f of found) console.log(`op ${f.op}: [${f.cls}] ${f.message}`);
    console.log(found.length ? `${found.length} finding(s)` : "no findings");
    process.exit(found.length ? 1 : 0);
  }
  const long = flag("long");
  const seed = num("seed", undefined) ?? (Date.now() % 2 ** 31);
  const requests = num("requests", long && arg("seconds") === undefined ? 1_000_000 : undefined);
  const seconds = num("seconds", requests === undefined ? 60 : undefined);
  const modeArg = arg("mode") ?? "both";
  if (!["mixed", "notify", "restore", "both"].includes(modeArg)) {
    console.error(`--mode ${modeArg}: expected mixed, notify, restore or both`);
    process.exit(2);
  }
  const out = arg("out") ?? join(tmpdir(), "v86-balloon-fuzz");
  const doMin = flag("minimize");
  const onlyClass = arg("class");
  console.error(`fuzz: seed ${seed}, ${requests !== undefined ? `${requests} requests` : `${seconds} s`}, mode ${modeArg}${doMin ? `, minimised repros to ${out}` : ""}`);

  const total: RunSummary = { requests: 0, episodes: 0, findings: [], occurrences: 0, restoreMutations: 0, exactNotifies: 0, inexactNotifies: 0, seconds: 0 };
  const classes = new Set<string>();
  const started = Date.now();
  const onFinding = async (r: Repro) => {
    if (classes.has(r.cls)) return;
    classes.add(r.cls);
    console.log(`FINDING [${r.cls}] ${r.message.split("\n")[0]}`);
    pendingRepros.push(r);
  };
  const pendingRepros: Repro[] = [];
  const modes: Mode[] = modeArg === "both" ? ["mixed", "notify"] : [modeArg as Mode];
  // Slices of 100k requests (or 20 s), alternating modes, seed, seed+1, ...: `--mode notify --seed 14
  // --requests 100000` is exactly the CI run of the same mode and seed (test/fuzz/fuzz.test.ts).
  for (let slice = 0; ; slice++) {
    const elapsed = (Date.now() - started) / 1000;
    if (requests !== undefined && total.requests >= requests) break;
    if (seconds !== undefined && elapsed >= seconds) break;
    const mode = modes[slice % modes.length]!;
    const s = await fuzz({
      seed: seed + slice, mode,
      requests: requests !== undefined ? Math.min(100_000, requests - total.requests) : undefined,
      seconds: seconds !== undefined ? Math.min(20, seconds - elapsed) : undefined,
      onFinding: (r) => void onFinding(r),
    });
    total.requests += s.requests;
    total.episodes += s.episodes;
    total.occurrences += s.occurrences;
    total.restoreMutations += s.restoreMutations;
    total.exactNotifies += s.exactNotifies;
    total.inexactNotifies += s.inexactNotifies;
    total.findings.push(...s.findings.filter((f) => !total.findings.some((g) => g.cls === f.cls)));
    console.error(`  slice ${slice} (${mode}, seed ${seed + slice}): ${s.requests} requests in ${s.seconds.toFixed(1)} s, ${s.findings.length} finding class(es)`);
  }
  let directCalls = 0;
  const directFindings: string[] = [];
  if (long) {
    for (let i = 0; i < 20; i++) {
      const d = await fuzzHotPath(seed + i, 10_000);
      directCalls += d.calls;
      directFindings.push(...d.findings);
    }
    for (const f of directFindings.slice(0, 20)) console.log(`FINDING [hotpath-direct] ${f}`);
  }
  total.seconds = (Date.now() - started) / 1000;

  if (doMin && pendingRepros.length) {
    mkdirSync(out, { recursive: true });
    const wanted = (cls: string) => !onlyClass || onlyClass.split(",").some((p) => cls.startsWith(p));
    for (const r of pendingRepros.filter((x) => wanted(x.cls))) {
      const m = await minimize(r, 60_000);
      const file = join(out, `${r.cls.replace(/[^a-z0-9.-]+/gi, "_").slice(0, 80)}.json`);
      writeFileSync(file, formatRepro(m));
      console.log(`  ${r.cls}: ${r.ops.length} -> ${m.ops.length} ops, ${file}`);
    }
  }
  const findings = total.findings.length + (directFindings.length ? 1 : 0);
  const rate = total.requests / total.seconds;
  console.log(`requests ${total.requests} in ${total.seconds.toFixed(1)} s (${rate.toFixed(0)}/s), ${total.episodes} episodes, ` +
    `${total.restoreMutations} hostile restores, notifies modelled exactly ${total.exactNotifies} / bounded ${total.inexactNotifies}` +
    `${long ? `, ${directCalls} direct hot-path calls` : ""}; finding classes: ${findings} (${total.occurrences} occurrences)`);
  if (long) {
    const file = fileURLToPath(new URL("../../bench/results.json", import.meta.url));
    const results: Record<string, number> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
    for (const k of Object.keys(results)) if (k.startsWith("fuzz.")) delete results[k];
    Object.assign(results, {
      "fuzz.requests": total.requests,
      "fuzz.requests_per_s": Math.round(rate),
      "fuzz.findings": findings,
      "fuzz.restore_mutations": total.restoreMutations,
      "fuzz.hotpath_calls": directCalls,
    });
    const sorted = Object.fromEntries(Object.entries(results).sort(([a], [b]) => a.localeCompare(b)));
    writeFileSync(file, JSON.stringify(sorted, null, 2) + "\n");
    console.error(`wrote fuzz.* to ${file}`);
  }
  process.exit(findings ? 1 : 0);
}

try {
  await main();
} catch (e) {
  // e.g. build/hotpath.wasm missing: the message names the command that makes it.
  console.error(`fuzz: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
}

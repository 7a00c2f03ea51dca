/**
 * `npm run bench [-- group ...]`: runs benchmark groups, prints a table, and merges the flat
 * named figures into bench/results.json (groups not run keep their previous figures).
 * Each group module exports `run(): Promise<Record<string, number>>`; ratios are measured
 * side by side inside one run, because absolute times on shared machines drift.
 * Before a group runs, what it needs is built if missing or stale (bench/prepare.ts), so a fresh
 * clone needs only `npm ci`. `BENCH_RESULTS=<file>` writes the figures there instead.
 * Each run records the machine's load (`<group>.loadavg_1m`, `bench.cpus`): figures from a loaded
 * machine are slower, the side-by-side ratios much less so.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { ensureBuilt, type Need } from "./prepare.js";

const GROUPS: Record<string, () => Promise<{ run(): Promise<Record<string, number>> }>> = {
  hotpath: () => import("./hotpath.js"),
  boot: () => import("./boot.js"),
  inflate256: () => import("./inflate256.js"),
  inflate: () => import("./inflate.js"),
  snapshot: () => import("./snapshot.js"),
  devinit: () => import("./devinit.js"),
  demo: () => import("./demo.js"),
  harness: () => import("./harness.js"),
  embed: () => import("./embed.js"),
};

/** What a group needs built besides the hot path (every group gets build/hotpath.wasm). */
const NEEDS: Record<string, Need[]> = { boot: ["site"], demo: ["site"] };

const RESULTS = process.env.BENCH_RESULTS || fileURLToPath(new URL("./results.json", import.meta.url));

async function main() {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  const unknown = asked.filter((g) => !(g in GROUPS));
  if (unknown.length) {
    console.error(`unknown benchmark group(s): ${unknown.join(", ")}; groups: ${Object.keys(GROUPS).join(", ")}`);
    process.exit(2);
  }
  const groups = asked.length ? asked : Object.keys(GROUPS);
  const results: Record<string, number> = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, "utf8")) : {};
  results["bench.cpus"] = cpus().length;
  let failed = false;
  for (const g of groups) {
    console.error(`# ${g}`);
    try {
      ensureBuilt(["hotpath", ...(NEEDS[g] ?? [])]);
      const before = loadavg()[0];
      const mod = await GROUPS[g]();
      const figures = await mod.run();
      // The load while the group ran (mean of the 1-minute averages before and after).
      figures[`${g}.loadavg_1m`] = Math.round(((before + loadavg()[0]) / 2) * 100) / 100;
      // A group's figures replace all of its previous ones, so renamed keys do not linger.
      for (const k of Object.keys(results)) if (k.startsWith(`${g}.`)) delete results[k];
      for (const [k, v] of Object.entries(figures)) results[k] = v;
      printTable(figures);
    } catch (e) {
      failed = true;
      console.error(`benchmark group ${g} failed: ${(e as Error).stack ?? e}`);
    }
    writeFileSync(RESULTS, JSON.stringify(sortKeys(results), null, 2) + "\n");
  }
  console.error(`wrote ${RESULTS}`);
  process.exit(failed ? 1 : 0);
}

function printTable(figures: Record<string, number>) {
  const width = Math.max(...Object.keys(figures).map((k) => k.length), 10);
  for (const [k, v] of Object.entries(figures)) {
    const shown = Number.isInteger(v) ? String(v) : v.toPrecision(4);
    console.log(`${k.padEnd(width)}  ${shown.padStart(12)}`);
  }
}

function sortKeys(o: Record<string, number>) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

await main();

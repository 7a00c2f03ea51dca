/**
 * Harness benchmarks (`npm run bench -- harness`), all on the 3-test reference set (balloon-present,
 * inflate-deflate, stats: 2 boot configurations), side by side in one run:
 *   harness.boot_per_test_ms         every test in a guest of its own (each test its own run, no snapshots)
 *   harness.suite_cold_ms            one run, empty snapshot cache: one boot per configuration, restores between
 *   harness.suite_ms                 the same run again, warm cache: no boot at all (what a re-run costs)
 *   harness.speedup_vs_boot_per_test boot_per_test_ms / suite_ms (goal >= 3)
 *   harness.boot_ms_median / harness.restore_ms_median   per-test start by boot vs from a snapshot (goal <= 500)
 *   harness.node_suite_ms / harness.chromium_suite_ms / harness.chromium_vs_node_ratio (goal <= 2):
 *                                    the same set without the disk cache on both (the page has none)
 *   harness.chromium_first_run_ms    the first page run of an install (vite pre-bundles the page's deps once)
 *   harness.scaling_2_workers / _4_workers   wall(1 worker) / wall(N workers), 4 `boot: fresh` copies
 *   harness.test_ms.<name>           per-test time in the cold Node run
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTests, type RunOptions, type RunResult } from "../src/harness/runner.js";
import { SUITE_DIR } from "../src/harness/files.js";
import { median } from "./support.js";

const SUITE = ["balloon-present.sh", "inflate-deflate.sh", "stats.sh"].map((f) => SUITE_DIR + f);


async function timed(o: RunOptions): Promise<RunResult> {
  const r = await runTests({ progress: false, ...o });
  if (!r.ok) {
    const bad = r.cases.filter((c) => !c.ok).map((c) => `${c.id}: ${c.failures.join("; ")}`);
    throw new Error(`harness bench run failed:\n${bad.join("\n")}`);
  }
  return r;
}

// Linux kicks the stats queue before DRIVER_OK (see test/guest-suite.test.ts): not what is timed here.
const ALLOW = ["notify-before-driver-ok"];

export async function run(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let perTest = 0;
  const bootMs: number[] = [];
  for (const f of SUITE) {
    const r = await timed({ files: [f], snapshots: false, allowDiagnostics: ALLOW });
    perTest += r.wallMs;
    bootMs.push(...r.bootMs);
  }
  out["harness.boot_per_test_ms"] = perTest;
  const cache = mkdtempSync(join(tmpdir(), "harness-cache-"));
  try {
    const cold = await timed({ files: SUITE, snapshotCache: cache, allowDiagnostics: ALLOW });
    const warm = await timed({ files: SUITE, snapshotCache: cache, allowDiagnostics: ALLOW });
    if (warm.bootMs.length) throw new Error(`the warm run booted ${warm.bootMs.length} time(s)`);
    out["harness.suite_cold_ms"] = cold.wallMs;
    out["harness.suite_ms"] = warm.wallMs;
    out["harness.speedup_vs_boot_per_test"] = perTest / warm.wallMs;
    out["harness.boot_ms_median"] = median([...bootMs, ...cold.bootMs]);
    out["harness.restore_ms_median"] = median([...cold.restoreMs, ...warm.restoreMs]);
    for (const c of cold.cases) out[`harness.test_ms.${c.name.length > 40 ? c.id.split("/").pop()!.replace(/\.sh$/, "") : c.name}`] = c.durationMs;
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  const node = await timed({ files: SUITE, snapshotCache: false, allowDiagnostics: ALLOW });
  out["harness.node_suite_ms"] = node.wallMs;

  try {
    // The first page run of an install also pre-bundles the page's dependencies into node_modules/.vite
    // (~30 s, once per install, as the Node side's build/hotpath.wasm is built once): reported on its own,
    // then the run a developer repeats is the one compared with Node.
    const first = await timed({ files: SUITE, browser: true, allowDiagnostics: ALLOW });
    out["harness.chromium_first_run_ms"] = first.wallMs;
    const chr = await timed({ files: SUITE, browser: true, allowDiagnostics: ALLOW });
    out["harness.chromium_suite_ms"] = chr.wallMs;
    out["harness.chromium_boot_ms_median"] = median(chr.bootMs);
    out["harness.chromium_vs_node_ratio"] = chr.wallMs / node.wallMs;
  } catch (e) {
    console.error(`chromium part skipped: ${(e as Error).message}`);
  }

  const dir = mkdtempSync(join(tmpdir(), "harness-scaling-"));
  try {
    // "boot: fresh": every copy needs its own guest, the case where more workers can help
    const body = readFileSync(SUITE_DIR + "inflate-deflate.sh", "utf8").replace("#!/bin/sh\n", "#!/bin/sh\n# boot: fresh\n");
    for (let i = 1; i <= 4; i++) writeFileSync(join(dir, `copy${i}.sh`), body);
    const files = [dir];
    const one = await timed({ files, workers: 1, isolate: true, allowDiagnostics: ALLOW });
    const two = await timed({ files, workers: 2, allowDiagnostics: ALLOW });
    const four = await timed({ files, workers: 4, allowDiagnostics: ALLOW });
    out["harness.scaling_1_worker_ms"] = one.wallMs;
    out["harness.scaling_2_workers"] = one.wallMs / two.wallMs;
    out["harness.scaling_4_workers"] = one.wallMs / four.wallMs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * Harness benchmarks (`npm run bench -- harness`):
 *   harness.node_suite_ms / harness.chromium_suite_ms   wall time of the same small suite (workers 1)
 *   harness.chromium_vs_node_ratio                      Chromium / Node (goal <= 2)
 *   harness.scaling_2_workers / _4_workers              wall(1 worker) / wall(N workers), 4 equal tests
 *   harness.boot_ms_median, harness.test_ms.<name>      per-boot and per-test times (Node run)
 * The suite: balloon-present, inflate-deflate, stats (2 boot configs). Scaling uses 4 copies of
 * inflate-deflate.sh marked `boot: fresh` (4 guests), run by 1, 2 and 4 workers.
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

export async function run(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const node = await timed({ files: SUITE });
  out["harness.node_suite_ms"] = node.wallMs;
  out["harness.boot_ms_median"] = median(node.bootMs);
  for (const c of node.cases) out[`harness.test_ms.${c.name.length > 40 ? c.id.split("/").pop()!.replace(/\.sh$/, "") : c.name}`] = c.durationMs;

  try {
    const chr = await timed({ files: SUITE, browser: true });
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
    const one = await timed({ files, workers: 1, isolate: true });
    const two = await timed({ files, workers: 2 });
    const four = await timed({ files, workers: 4 });
    out["harness.scaling_1_worker_ms"] = one.wallMs;
    out["harness.scaling_2_workers"] = one.wallMs / two.wallMs;
    out["harness.scaling_4_workers"] = one.wallMs / four.wallMs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

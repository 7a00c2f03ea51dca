/**
 * `npm run bench -- hotpath` on a fresh clone: the files git would check out (tracked plus new,
 * not ignored), this checkout's node_modules linked in, no build/ and no dist/. The group must build
 * the hot path itself and write its figures; BENCH_RESULTS keeps the run away from the tracked
 * bench/results.json.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "v86-balloon-fresh-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The working tree as a clone would have it: git's file list, copied with its current contents. */
function freshClone(to: string): void {
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((f) => f && existsSync(join(ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(to, f)), { recursive: true });
    copyFileSync(join(ROOT, f), join(to, f));
  }
  symlinkSync(join(ROOT, "node_modules"), join(to, "node_modules"), "dir");
}

test("npm run bench -- hotpath builds the hot path itself on a fresh clone and writes its figures", () => {
  const clone = join(dir, "clone");
  freshClone(clone);
  // Preconditions: nothing built, the results file not there yet.
  expect(existsSync(join(clone, "build"))).toBe(false);
  expect(existsSync(join(clone, "package.json"))).toBe(true);
  const results = join(dir, "results.json");
  const tracked = readFileSync(join(clone, "bench", "results.json"), "utf8");

  const r = spawnSync("npm", ["run", "bench", "--", "hotpath"], {
    cwd: clone,
    env: { ...process.env, BENCH_RESULTS: results },
    encoding: "utf8",
    timeout: 170_000,
  });
  expect(r.status, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
  expect(r.stderr).toContain("npm run asbuild");
  expect(existsSync(join(clone, "build", "hotpath.wasm"))).toBe(true);
  const figures = JSON.parse(readFileSync(results, "utf8")) as Record<string, number>;
  for (const k of ["hotpath.fill_fraction_of_limit", "hotpath.walk_speedup_vs_js", "hotpath.loadavg_1m", "bench.cpus"]) {
    expect(typeof figures[k], k).toBe("number");
  }
  expect(readFileSync(join(clone, "bench", "results.json"), "utf8")).toBe(tracked);
}, 180_000);

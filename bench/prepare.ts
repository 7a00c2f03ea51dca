/**
 * What a benchmark group needs built before it runs, built here when it is missing or older than its
 * sources, so `npm ci && npm run bench` works on a fresh clone with no hidden step.
 *   hotpath: build/hotpath.wasm (`npm run asbuild`), used by every group that instantiates the device.
 *   site:    the built demo site dist/ (`npm run build`, which also builds the hot path), for the
 *            groups that open it in Chromium.
 * Build output goes to stderr, so stdout keeps only the results table.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type Need = "hotpath" | "site";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Product {
  /** Files that must exist; the oldest of them is compared with the sources. */
  outputs: string[];
  /** Files or directories whose newest file must not be newer than the outputs. */
  sources: string[];
  script: string;
}

const PRODUCTS: Record<Need, Product> = {
  hotpath: { outputs: ["build/hotpath.wasm"], sources: ["assembly", "asconfig.json"], script: "asbuild" },
  site: {
    outputs: ["dist/index.html", "dist/guest/manifest.json"],
    sources: ["assembly", "asconfig.json", "src", "public", "index.html", "vite.config.ts", "package-lock.json"],
    script: "build",
  },
};

function newest(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path)) t = Math.max(t, newest(join(path, e)));
  return t;
}

/** Why `need` must be (re)built, or null when its outputs are present and newer than its sources. */
export function staleReason(need: Need, root = ROOT): string | null {
  const p = PRODUCTS[need];
  const missing = p.outputs.filter((o) => !existsSync(join(root, o)));
  if (missing.length) return `${missing.join(", ")} missing`;
  const built = Math.min(...p.outputs.map((o) => statSync(join(root, o)).mtimeMs));
  const src = Math.max(...p.sources.map((s) => newest(join(root, s))));
  return src > built ? `sources newer than ${p.outputs[0]}` : null;
}

/** Builds whatever of `needs` is missing or stale; throws with the command to run by hand if a build fails. */
export function ensureBuilt(needs: readonly Need[], root = ROOT): void {
  // The site build includes the hot path: one build, not two.
  const order: Need[] = needs.includes("site") ? ["site"] : [...needs];
  for (const need of order) {
    const why = staleReason(need, root);
    if (!why) continue;
    const { script } = PRODUCTS[need];
    console.error(`# building ${need} (${why}): npm run ${script}`);
    const r = spawnSync("npm", ["run", script], { cwd: root, stdio: ["ignore", 2, 2] });
    if (r.status !== 0) {
      throw new Error(`\`npm run ${script}\` failed (${r.error?.message ?? `exit ${r.status}`}); run it in ${root} and read its output`);
    }
  }
}

/**
 * Post-boot snapshots kept on disk across runs (Node): a boot group whose images, configuration and
 * lib.sh are unchanged starts from the state a previous run saved right after boot + driver check,
 * instead of booting. The key hashes everything that shapes that state; groups with faults are not
 * cached (fault timers run from DRIVER_OK on). Default directory: $V86_BALLOON_CACHE, else
 * $XDG_CACHE_HOME/v86-balloon/snapshots (~/.cache/...); at most KEEP states, oldest dropped first.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { IMAGE_FILES } from "../guest-manifest.js";
import { bootKey, type CachedBoot, type SnapshotCache } from "./session.js";
import type { TestGroup } from "./types.js";

const FORMAT = 1;
const KEEP = 24;

export function defaultCacheDir(): string {
  return process.env.V86_BALLOON_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "v86-balloon", "snapshots");
}

export function diskCache(dir: string): SnapshotCache {
  return {
    async get(key) {
      try {
        const state = readFileSync(join(dir, `${key}.state`));
        const meta = JSON.parse(readFileSync(join(dir, `${key}.json`), "utf8")) as { diagnostics: CachedBoot["diagnostics"] };
        return { state: state.buffer.slice(state.byteOffset, state.byteOffset + state.byteLength) as ArrayBuffer, diagnostics: meta.diagnostics ?? [] };
      } catch {
        return null;
      }
    },
    async put(key, boot) {
      mkdirSync(dir, { recursive: true });
      // Written under temporary names, then renamed: a parallel worker never reads half a state.
      const tmp = `.${process.pid}.${key}`;
      writeFileSync(join(dir, `${tmp}.json`), JSON.stringify({ diagnostics: boot.diagnostics, saved: new Date().toISOString() }));
      writeFileSync(join(dir, `${tmp}.state`), new Uint8Array(boot.state));
      renameSync(join(dir, `${tmp}.json`), join(dir, `${key}.json`));
      renameSync(join(dir, `${tmp}.state`), join(dir, `${key}.state`));
      prune(dir);
    },
  };
}

function prune(dir: string): void {
  const states = readdirSync(dir)
    .filter((f) => f.endsWith(".state") && !f.startsWith("."))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of states.slice(KEEP)) {
    rmSync(join(dir, f), { force: true });
    rmSync(join(dir, f.replace(/\.state$/, ".json")), { force: true });
  }
}

const fileHashes = new Map<string, string>();
function fileHash(path: string): string {
  let h = fileHashes.get(path);
  if (!h) {
    h = createHash("sha256").update(readFileSync(path)).digest("hex");
    fileHashes.set(path, h);
  }
  return h;
}

function versionOf(pkg: string): string {
  const req = createRequire(import.meta.url);
  return (JSON.parse(readFileSync(req.resolve(`${pkg}/package.json`), "utf8")) as { version: string }).version;
}

/** The cache key of a group's post-boot state, or undefined when it must not be cached. */
export function groupCacheKey(g: TestGroup, ctx: { imageDir: string; lib: string; driverCheck: boolean }): string | undefined {
  if (g.fresh || g.boot.faults.length) return undefined;
  const dir = g.boot.imageDir ?? ctx.imageDir;
  const parts = {
    format: FORMAT,
    v86: versionOf("v86"),
    self: fileHash(new URL("../../package.json", import.meta.url).pathname),
    boot: bootKey(g.boot),
    kernel: fileHash(g.boot.kernel ?? join(dir, IMAGE_FILES.kernel)),
    initrd: fileHash(g.boot.initrd ?? join(dir, IMAGE_FILES.initrd)),
    bios: fileHash(join(dir, IMAGE_FILES.bios)) + fileHash(join(dir, IMAGE_FILES.vgaBios)),
    lib: createHash("sha256").update(ctx.lib).digest("hex"),
    driverCheck: ctx.driverCheck,
  };
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}

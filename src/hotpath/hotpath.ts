/**
 * Loader of the AssemblyScript hot path (assembly/index.ts -> build/hotpath.wasm, `npm run asbuild`).
 *
 * Where the wasm comes from:
 *  - Node (vitest, bench, harness): read with node:fs from `new URL("../../build/hotpath.wasm", import.meta.url)`.
 *  - Browser via Vite: the same `new URL(<literal>, import.meta.url)` is rewritten by Vite (dev: served from
 *    /build/hotpath.wasm; build: emitted as a hashed asset) and fetched. Run `npm run asbuild` before `vite`.
 *  - Anything else (embedders, other bundlers): pass `{ url }`, `{ wasm: bytes }` or `{ wasm: compiledModule }`.
 * The module imports `env.memory` (= mem.memory, v86's own) and `env.dirty` (mem.dirty, or `dirtyImport`,
 * e.g. v86.wasm's exported jit_dirty_cache for a direct wasm-to-wasm call) and writes nothing at instantiation.
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import { WALK_ERRORS, type FillResult, type HotPath, type UnmarkResult } from "./types.js";

export * from "./types.js";
export { referenceHotPath } from "./reference.js";

/** Raw exports of build/hotpath.wasm (assembly/index.ts). */
interface HotPathExports {
  walk_chain(base: number, ramSize: number, descAddr: number, qsize: number, head: number, outPtr: number, maxSeg: number, allowIndirect: number): number;
  fill_pfns(base: number, ramSize: number, pfnAddr: number, count: number, fill: number, bitmapPtr: number, flags: number, trackPtr: number): number;
  unmark_pfns(base: number, ramSize: number, pfnAddr: number, count: number, trackPtr: number): number;
  fill_range(base: number, ramSize: number, addr: number, len: number, fill: number): number;
  push_used(base: number, ramSize: number, usedAddr: number, qsize: number, usedIdx: number, id: number, len: number): number;
  res_out_of_range: WebAssembly.Global;
  res_first_bad_index: WebAssembly.Global;
  res_already_inflated: WebAssembly.Global;
  res_not_inflated: WebAssembly.Global;
  res_runs: WebAssembly.Global;
  res_pages_written: WebAssembly.Global;
}

export interface LoadHotPathOptions {
  /**
   * The `env.dirty(start, end)` import. Default: `(s, e) => mem.dirty(s, e)`. The v86 adapter may pass
   * v86.wasm's own exported `jit_dirty_cache` function here (a direct wasm-to-wasm call, no JS hop).
   */
  dirtyImport?: (start: number, end: number) => void;
  /** The wasm bytes or an already compiled module (skips loading build/hotpath.wasm). */
  wasm?: BufferSource | WebAssembly.Module;
  /** Where to load the wasm from (default: build/hotpath.wasm next to the repo root). */
  url?: string | URL;
}

/**
 * Where the wasm is. `new URL("...", import.meta.url)` with a literal string is understood by Vite:
 * in a Vite build the file is emitted as an asset and this URL rewritten; in Node/vitest it is a file: URL.
 */
function defaultWasmUrl(): URL {
  return new URL("../../build/hotpath.wasm", import.meta.url);
}

let cachedModule: Promise<WebAssembly.Module> | null = null;

async function loadModule(url: URL): Promise<WebAssembly.Module> {
  if (url.protocol === "file:") {
    // Node (vitest, bench, harness). The specifier is hidden from bundlers: never part of a browser bundle.
    const fsName = "node:fs/promises";
    const fs = (await import(/* @vite-ignore */ fsName)) as typeof import("node:fs/promises");
    const bytes = await fs.readFile(url);
    return WebAssembly.compile(bytes);
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`hotpath: cannot fetch ${url.href}: HTTP ${res.status}`);
  if (typeof WebAssembly.compileStreaming === "function" && res.headers.get("content-type")?.includes("application/wasm")) {
    return WebAssembly.compileStreaming(res);
  }
  return WebAssembly.compile(await res.arrayBuffer());
}

const isU32 = (x: number) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff;

/**
 * Instantiate build/hotpath.wasm on `mem.memory` (imports `env.memory`, `env.dirty`).
 * Node: read from the file system relative to this module. Browser (Vite): fetched from the asset URL.
 * The compiled module is cached; each call makes a new instance (its own result globals).
 */
export async function loadHotPath(mem: GuestMemory, opts: LoadHotPathOptions = {}): Promise<HotPath> {
  let module: WebAssembly.Module;
  if (opts.wasm instanceof WebAssembly.Module) module = opts.wasm;
  else if (opts.wasm) module = await WebAssembly.compile(opts.wasm);
  else if (opts.url) module = await loadModule(new URL(opts.url));
  else {
    cachedModule ??= loadModule(defaultWasmUrl());
    try {
      module = await cachedModule;
    } catch (e) {
      cachedModule = null;
      throw new Error(`hotpath: cannot load build/hotpath.wasm (run \`npm run asbuild\`): ${e instanceof Error ? e.message : e}`);
    }
  }
  const dirty = opts.dirtyImport ?? ((s: number, e: number) => mem.dirty(s >>> 0, e >>> 0));
  const instance = await WebAssembly.instantiate(module, { env: { memory: mem.memory, dirty } });
  const x = instance.exports as unknown as HotPathExports;
  const base = mem.base;
  const size = mem.size;
  if (!isU32(base) || !isU32(size) || base + size > 0x100000000) throw new RangeError("hotpath: guest RAM must lie in the 32-bit memory");

  return {
    kind: "wasm",
    walkChain(descAddr, qsize, head, outPtr, maxSeg, allowIndirect) {
      // Values beyond u32 would be truncated by the wasm ABI: refuse them here.
      if (!isU32(descAddr) || !isU32(qsize)) return WALK_ERRORS["desc-table-out-of-ram"];
      if (!isU32(head)) return WALK_ERRORS["head-out-of-range"];
      return x.walk_chain(base, size, descAddr, qsize, head, outPtr, maxSeg, allowIndirect ? 1 : 0);
    },
    fillPfns(pfnAddr, count, fill, bitmapPtr, flags, trackPtr = 0): FillResult {
      if (!isU32(pfnAddr) || !isU32(count)) return { filled: -1, outOfRange: 0, firstBadIndex: -1, alreadyInflated: 0, runs: 0, pagesWritten: 0 };
      if (!isU32(bitmapPtr)) return { filled: -2, outOfRange: 0, firstBadIndex: -1, alreadyInflated: 0, runs: 0, pagesWritten: 0 };
      const filled = x.fill_pfns(base, size, pfnAddr, count, fill, bitmapPtr, flags, trackPtr);
      return {
        filled,
        outOfRange: x.res_out_of_range.value as number,
        firstBadIndex: x.res_first_bad_index.value as number,
        alreadyInflated: x.res_already_inflated.value as number,
        runs: x.res_runs.value as number,
        pagesWritten: x.res_pages_written.value as number,
      };
    },
    unmarkPfns(pfnAddr, count, trackPtr): UnmarkResult {
      if (!isU32(pfnAddr) || !isU32(count)) return { unmarked: -1, outOfRange: 0, firstBadIndex: -1, notInflated: 0 };
      const unmarked = x.unmark_pfns(base, size, pfnAddr, count, trackPtr);
      return {
        unmarked,
        outOfRange: x.res_out_of_range.value as number,
        firstBadIndex: x.res_first_bad_index.value as number,
        notInflated: x.res_not_inflated.value as number,
      };
    },
    fillRange(addr, len, fill) {
      if (!isU32(addr) || !isU32(len)) return false;
      return x.fill_range(base, size, addr, len, fill) === 1;
    },
    pushUsed(usedAddr, qsize, usedIdx, id, len) {
      if (!isU32(usedAddr) || !isU32(qsize)) return -1;
      return x.push_used(base, size, usedAddr, qsize, usedIdx, id, len);
    },
  };
}

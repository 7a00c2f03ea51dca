/**
 * Hot-path benchmark: AssemblyScript vs JS reference vs the contiguous-fill limit, side by side in one run.
 *
 *   npx tsx bench/hotpath.ts        (prints the figures as JSON; needs `npm run asbuild` first)
 *
 * Figures (flat):
 *   hotpath.fill_*           256 MiB inflate as Linux sends it: 65536 PFNs in 256-PFN requests, PFN order =
 *                            shuffled blocks of random length, each block descending (buddy allocator)
 *   hotpath.fill_fraction_of_limit   AS inflate time vs one contiguous 256 MiB fill (goal >= 0.5)
 *   hotpath.fill_speedup_vs_js       AS vs JS per-page Uint8Array.fill
 *   hotpath.walk_*           256-descriptor chain walk, AS vs JS DataView (goal speedup >= 3)
 * Each figure: 1 warm-up, then >= 7 alternating rounds, median.
 */
import { pathToFileURL } from "node:url";
import { createWasmGuestMemory } from "../src/memory/wasm-memory.js";
import type { GuestMemory } from "../src/memory/guest-memory.js";
import { loadHotPath, referenceHotPath, type HotPath } from "../src/hotpath/hotpath.js";
import { rng } from "../devkit/rng.js";

const MiB = 1 << 20;
const FILL_BYTES = 256 * MiB;
const PAGES = FILL_BYTES / 4096; // 65536
const CHAIN = 256;
const LISTS = FILL_BYTES; // guest address of the PFN lists (just past the filled area)
const ROUNDS = 7;


/** PFN order like Linux's balloon: blocks of random length (mostly short, some long) in random order, each descending. */
export function linuxLikePfns(seed = 1): Uint32Array {
  const r = rng(seed);
  const blocks: Array<[number, number]> = [];
  for (let p = 0; p < PAGES;) {
    const len = Math.min(PAGES - p, 1 + Math.floor(r() < 0.8 ? r() * 32 : r() * 512));
    blocks.push([p, len]);
    p += len;
  }
  for (let i = blocks.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [blocks[i], blocks[j]] = [blocks[j]!, blocks[i]!];
  }
  const out = new Uint32Array(PAGES);
  let o = 0;
  for (const [start, len] of blocks) for (let k = len - 1; k >= 0; k--) out[o++] = start + k;
  return out;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

export async function run(): Promise<Record<string, number>> {
  const tm = createWasmGuestMemory(FILL_BYTES + MiB, { scratch: 2 * MiB });
  let dirtyCalls = 0; // counted, not reported
  // A cheap counter stands in for v86's jit_dirty_cache (the test memory's recorder would dominate).
  const mem: GuestMemory = { memory: tm.memory, base: tm.base, size: tm.size, bytes: () => tm.bytes(),
    allocScratch: (n) => tm.allocScratch(n), dirty: () => { dirtyCalls++; } };
  const wasm = await loadHotPath(mem);
  const js = referenceHotPath(mem);

  const pfns = linuxLikePfns(1);
  new Uint8Array(tm.memory.buffer, tm.base + LISTS, PAGES * 4).set(new Uint8Array(pfns.buffer));
  const bitmap = mem.allocScratch(CHAIN / 8);
  tm.bytes().fill(1, 0, FILL_BYTES); // touch every page once

  let fillByte = 0;
  let runs = 0;
  const inflate = (h: HotPath) => {
    const f = (fillByte = (fillByte + 1) & 0xff);
    const t0 = performance.now();
    runs = 0;
    for (let i = 0; i < PAGES; i += CHAIN) runs += h.fillPfns(LISTS + 4 * i, CHAIN, f, bitmap, 0).runs;
    return performance.now() - t0;
  };
  const contiguous = () => {
    const f = (fillByte = (fillByte + 1) & 0xff);
    const t0 = performance.now();
    wasm.fillRange(0, FILL_BYTES, f);
    return performance.now() - t0;
  };
  const contiguousJs = () => {
    const f = (fillByte = (fillByte + 1) & 0xff);
    const t0 = performance.now();
    tm.bytes().fill(f, 0, FILL_BYTES);
    return performance.now() - t0;
  };

  inflate(wasm); inflate(js); contiguous(); contiguousJs();
  const tAs: number[] = [], tJs: number[] = [], tLim: number[] = [], tLimJs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) { tAs.push(inflate(wasm)); tJs.push(inflate(js)); tLim.push(contiguous()); tLimJs.push(contiguousJs()); }
    else { tLim.push(contiguous()); tLimJs.push(contiguousJs()); tJs.push(inflate(js)); tAs.push(inflate(wasm)); }
  }
  // sanity: an AS inflate fills every page
  runs = 0;
  for (let i = 0; i < PAGES; i += CHAIN) runs += wasm.fillPfns(LISTS + 4 * i, CHAIN, 0x5a, bitmap, 0).runs;
  const b = tm.bytes();
  for (let p = 0; p < PAGES; p += 97) if (b[p * 4096] !== 0x5a || b[p * 4096 + 4095] !== 0x5a) throw new Error(`bench fill check page ${p}`);

  // ---- chain walk: 256 descriptors, one chain ----
  const descAddr = LISTS + PAGES * 4;
  const v = tm.view();
  for (let i = 0; i < CHAIN; i++) {
    const d = descAddr + 16 * i;
    v.setUint32(d, 4096 * ((i * 7919) % PAGES), true); v.setUint32(d + 4, 0, true);
    v.setUint32(d + 8, 4096, true);
    v.setUint16(d + 12, (i < CHAIN - 1 ? 1 : 0) | (i >= CHAIN / 2 ? 2 : 0), true);
    v.setUint16(d + 14, i + 1, true);
  }
  const out = mem.allocScratch(CHAIN * 12);
  const WALKS = 4000;
  const walk = (h: HotPath) => {
    const t0 = performance.now();
    let n = 0;
    for (let i = 0; i < WALKS; i++) n += h.walkChain(descAddr, CHAIN, 0, out, CHAIN, false);
    const dt = performance.now() - t0;
    if (n !== WALKS * CHAIN) throw new Error(`bench walk returned ${n / WALKS}`);
    return (dt * 1e6) / (WALKS * CHAIN); // ns per descriptor
  };
  walk(wasm); walk(js); walk(wasm); walk(js);
  const wAs: number[] = [], wJs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) { wAs.push(walk(wasm)); wJs.push(walk(js)); } else { wJs.push(walk(js)); wAs.push(walk(wasm)); }
  }

  const as = median(tAs), jsT = median(tJs), lim = median(tLim), limJs = median(tLimJs);
  const gbps = (ms: number) => FILL_BYTES / (ms / 1000) / 1e9;
  return {
    "hotpath.fill_as_ms": round(as),
    "hotpath.fill_js_ms": round(jsT),
    "hotpath.fill_contiguous_ms": round(lim),
    "hotpath.fill_contiguous_js_ms": round(limJs),
    "hotpath.fill_as_gbps": round(gbps(as)),
    "hotpath.fill_js_gbps": round(gbps(jsT)),
    "hotpath.fill_contiguous_gbps": round(gbps(Math.min(lim, limJs))),
    "hotpath.fill_runs_per_256": round(runs / (PAGES / CHAIN)),
    "hotpath.fill_fraction_of_limit": round(Math.min(lim, limJs) / as),
    "hotpath.fill_speedup_vs_js": round(jsT / as),
    "hotpath.walk_as_ns_per_desc": round(median(wAs)),
    "hotpath.walk_js_ns_per_desc": round(median(wJs)),
    "hotpath.walk_speedup_vs_js": round(median(wJs) / median(wAs)),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => { console.error(e); process.exitCode = 1; });
}

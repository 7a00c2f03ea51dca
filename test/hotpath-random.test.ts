/** Randomised equivalence: AssemblyScript hot path vs the plain-JS reference, on identical memories. */
import { describe, expect, it } from "vitest";
import { createTestMemory, type TestMemory } from "./support/test-memory.js";
import {
  FILL_BITMAP_GUEST, FILL_LIE, FILL_NO_FILL, FILL_SET_PADDING, loadHotPath, referenceHotPath, type HotPath,
} from "../src/hotpath/hotpath.js";
import { rng } from "../devkit/rng.js";

const RAM = 8 << 20;
const PAGES = RAM / 4096;


interface Pair { a: TestMemory; b: TestMemory; wasm: HotPath; js: HotPath }

async function pair(seed: number): Promise<Pair> {
  const a = createTestMemory(RAM, { base: 65536 + 8 * (seed % 5) });
  const b = createTestMemory(RAM, { base: 65536 });
  const r = rng(seed ^ 0xabcdef);
  const ra = a.bytes(), rb = b.bytes();
  for (let i = 0; i < RAM; i += 4096) { const x = (r() * 256) | 0; ra.fill(x, i, i + 4096); rb.fill(x, i, i + 4096); }
  return { a, b, wasm: await loadHotPath(a), js: referenceHotPath(b) };
}

function genPfns(r: () => number, n: number, lowestPfn: number): number[] {
  const out: number[] = [];
  const rand = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo));
  while (out.length < n) {
    const k = r();
    if (k < 0.35) { // descending run (buddy allocator)
      let p = rand(lowestPfn, PAGES + 8); const len = rand(1, 40);
      for (let i = 0; i < len && out.length < n; i++) out.push(p--);
    } else if (k < 0.6) { // ascending run
      let p = rand(lowestPfn, PAGES + 8); const len = rand(1, 40);
      for (let i = 0; i < len && out.length < n; i++) out.push(p++);
    } else if (k < 0.75 && out.length) out.push(out[rand(0, out.length)]!); // duplicate
    else if (k < 0.85) out.push(r() < 0.5 ? rand(PAGES, PAGES * 4) : 0xffffffff - rand(0, 3)); // out of range
    else out.push(rand(lowestPfn, PAGES));
  }
  return out.map((p) => (p < lowestPfn && p >= 0 ? lowestPfn : p >>> 0));
}

describe("fill_pfns: wasm == JS reference (random PFN lists)", () => {
  it("memory, bitmaps, counts, track bits equal; dirty covers every written page", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const p = await pair(seed);
      const trackA = p.a.allocScratch(PAGES / 8), trackB = p.b.allocScratch(PAGES / 8);
      const initTrack = Uint8Array.from({ length: PAGES / 8 }, () => (r() < 0.3 ? (r() * 256) | 0 : 0));
      new Uint8Array(p.a.memory.buffer).set(initTrack, trackA);
      new Uint8Array(p.b.memory.buffer).set(initTrack, trackB);
      const bmA = p.a.allocScratch(64), bmB = p.b.allocScratch(64);
      for (let round = 0; round < 6; round++) {
        const n = round === 0 ? 256 : 1 + Math.floor(r() * 300);
        // PFN list at guest 0x0, guest bitmap at 0x2000: pages 0..2 are never in the list (Linux never
        // balloons its own request buffers).
        const pfns = genPfns(r, n, 3);
        for (const m of [p.a, p.b]) pfns.forEach((x, i) => m.view().setUint32(4 * i, x, true));
        const fill = (r() * 256) | 0;
        const flags = [0, 0, 0, FILL_LIE, FILL_SET_PADDING, FILL_NO_FILL, FILL_BITMAP_GUEST, FILL_BITMAP_GUEST | FILL_SET_PADDING][Math.floor(r() * 8)]!;
        const guest = (flags & FILL_BITMAP_GUEST) !== 0;
        const useTrack = r() < 0.7;
        const before = p.a.bytes().slice();
        p.a.clearDirty();
        const ra = p.wasm.fillPfns(0, n, fill, guest ? 0x2000 : bmA, flags, useTrack ? trackA : 0);
        const rb = p.js.fillPfns(0, n, fill, guest ? 0x2000 : bmB, flags, useTrack ? trackB : 0);
        const ctx = `seed ${seed} round ${round} n ${n} flags ${flags}`;
        expect(ra, ctx).toEqual(rb);
        const expectFilled = (flags & FILL_NO_FILL) ? 0 : pfns.filter((x) => x < PAGES).length;
        expect(ra.filled, ctx).toBe(expectFilled);
        expect(ra.outOfRange, ctx).toBe(pfns.filter((x) => x >= PAGES).length);
        const A = p.a.bytes(), B = p.b.bytes();
        expect(Buffer.compare(A, B), ctx).toBe(0);
        const nb = Math.ceil(n / 8);
        const bitsA = guest ? A.slice(0x2000, 0x2000 + nb) : new Uint8Array(p.a.memory.buffer).slice(bmA, bmA + nb);
        const bitsB = guest ? B.slice(0x2000, 0x2000 + nb) : new Uint8Array(p.b.memory.buffer).slice(bmB, bmB + nb);
        expect([...bitsA], ctx).toEqual([...bitsB]);
        expect(Buffer.compare(new Uint8Array(p.a.memory.buffer, trackA, PAGES / 8), new Uint8Array(p.b.memory.buffer, trackB, PAGES / 8)), ctx).toBe(0);
        // every changed byte and every written page is covered by a dirty range; no dirty outside RAM
        for (let pg = 0; pg < PAGES; pg++) {
          const o = pg * 4096;
          let changed = false;
          for (let i = o; i < o + 4096; i += 64) if (A[i] !== before[i]) { changed = true; break; }
          // a listed page that already held the fill byte is left alone (not written, so not dirtied)
          const heldBefore = before.subarray(o, o + 4096).every((x) => x === (fill & 0xff));
          if (changed || (!(flags & (FILL_NO_FILL | FILL_LIE)) && pfns.includes(pg) && !heldBefore)) {
            expect(p.a.dirtyCovers(o, o + 4096) || (guest && pg === 2 && p.a.dirtyCovers(0x2000, 0x2000 + nb)), `${ctx} page ${pg}`).toBe(true);
          }
        }
        expect(p.a.badDirty, ctx).toEqual([]);
        expect(p.a.guardsIntact(), ctx).toBe(true);
        expect(p.b.guardsIntact(), ctx).toBe(true);
        // deflate accounting on the same list
        expect(p.wasm.unmarkPfns(0, n, useTrack ? trackA : 0), ctx).toEqual(p.js.unmarkPfns(0, n, useTrack ? trackB : 0));
      }
    }
  });
});

describe("walk_chain: wasm == JS reference (random descriptor tables)", () => {
  it("same return code and same segment records", async () => {
    const p = await pair(7);
    const outA = p.a.allocScratch(300 * 12), outB = p.b.allocScratch(300 * 12);
    const r = rng(99);
    const rand = (n: number) => Math.floor(r() * n);
    const codes = new Map<number, number>();
    for (let iter = 0; iter < 4000; iter++) {
      const qsize = 1 << rand(9);
      const descAddr = r() < 0.02 ? RAM - 16 * qsize + 16 : 0x10000 + 16 * rand(64);
      const writeDesc = (at: number, entries: number, nested: boolean) => {
        for (let i = 0; i < entries; i++) {
          const k = r();
          let addrLo: number, addrHi = 0;
          if (k < 0.8) addrLo = rand(RAM - 8192);
          else if (k < 0.9) addrLo = RAM - rand(64);
          else { addrLo = rand(2 ** 32); addrHi = rand(4) === 0 ? 0xffffffff : rand(3); }
          const lenR = r();
          let len = lenR < 0.05 ? 0 : lenR < 0.9 ? 1 + rand(4096) : rand(2 ** 32);
          let flags = (r() < 0.75 ? 1 : 0) | (r() < 0.4 ? 2 : 0) | (r() < (nested ? 0.02 : 0.04) ? 4 : 0);
          if (flags & 4 && r() < 0.7) { // plausible indirect table
            flags &= ~1;
            const ents = 1 + rand(20);
            addrLo = 0x200000 + 16 * rand(4096); addrHi = 0; len = r() < 0.9 ? ents * 16 : rand(400);
            if (!nested && addrLo + 16 * ents < RAM) writeDesc(addrLo, ents, true);
          }
          const next = r() < 0.97 ? rand(Math.min(entries + 1, 65536)) : rand(65536);
          for (const m of [p.a, p.b]) {
            const v = m.view();
            if (at + 16 * i + 16 > RAM) continue;
            v.setUint32(at + 16 * i, addrLo >>> 0, true);
            v.setUint32(at + 16 * i + 4, addrHi >>> 0, true);
            v.setUint32(at + 16 * i + 8, len >>> 0, true);
            v.setUint16(at + 16 * i + 12, flags, true);
            v.setUint16(at + 16 * i + 14, next, true);
          }
        }
      };
      if (descAddr + 16 * qsize <= RAM) writeDesc(descAddr, qsize, false);
      const head = r() < 0.03 ? qsize + rand(5) : rand(qsize);
      const maxSeg = r() < 0.1 ? rand(8) : 300;
      const allow = r() < 0.9;
      const ca = p.wasm.walkChain(descAddr, qsize, head, outA, maxSeg, allow);
      const cb = p.js.walkChain(descAddr, qsize, head, outB, maxSeg, allow);
      expect(ca, `iter ${iter}`).toBe(cb);
      codes.set(ca < 0 ? ca : 1, (codes.get(ca < 0 ? ca : 1) ?? 0) + 1);
      if (ca > 0) {
        expect(Buffer.compare(new Uint8Array(p.a.memory.buffer, outA, ca * 12), new Uint8Array(p.b.memory.buffer, outB, ca * 12)), `iter ${iter}`).toBe(0);
      }
    }
    // the generator reaches success and most error kinds
    expect(codes.get(1)! > 100).toBe(true);
    for (const c of [-1, -2, -3, -4, -5, -6, -7, -8, -11]) expect(codes.get(c) ?? 0, `code ${c}`).toBeGreaterThan(0);
    expect(p.a.guardsIntact()).toBe(true);
  });
});

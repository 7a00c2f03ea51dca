import { describe, expect, it } from "vitest";
import { createTestMemory, type TestMemory } from "./support/test-memory.js";
import {
  FILL_BITMAP_GUEST, FILL_LIE, FILL_NO_FILL, FILL_SET_PADDING, loadHotPath, referenceHotPath, type HotPath,
} from "../src/hotpath/hotpath.js";

const RAM = 4 << 20; // 1024 pages
const PAGES = RAM / 4096;
const LIST = 0x1000; // PFN list (guest)
const GBM = 0x3000; // guest bitmap

async function setup(impl: "wasm" | "js", opts: { base?: number } = {}): Promise<{ mem: TestMemory; hot: HotPath }> {
  const mem = createTestMemory(RAM, { ...opts, initialFill: 0x11 });
  const hot = impl === "wasm" ? await loadHotPath(mem) : referenceHotPath(mem);
  return { mem, hot };
}

function putPfns(mem: TestMemory, pfns: readonly number[], at = LIST): void {
  const v = mem.view();
  pfns.forEach((p, i) => v.setUint32(at + 4 * i, p >>> 0, true));
}

function pageIs(mem: TestMemory, pfn: number, byte: number): boolean {
  const b = mem.bytes().subarray(pfn * 4096, pfn * 4096 + 4096);
  return b.every((x) => x === byte);
}

function expectedBitmap(n: number, filled: (i: number) => boolean, padding = false): number[] {
  const out = new Array<number>(Math.ceil(n / 8)).fill(0);
  for (let i = 0; i < n; i++) if (filled(i)) out[i >> 3]! |= 1 << (i & 7);
  if (padding && n % 8) out[out.length - 1]! |= (0xff << (n % 8)) & 0xff;
  return out;
}

for (const impl of ["wasm", "js"] as const) {
  describe(`hot path fill (${impl})`, () => {
    for (const n of [1, 4, 8, 9, 256]) {
      it(`inflate of ${n} PFNs: exact bitmap bytes (padding 0), pages filled, dirty covered`, async () => {
        const { mem, hot } = await setup(impl);
        const pfns = Array.from({ length: n }, (_, i) => 700 - i); // descending run, like Linux
        putPfns(mem, pfns);
        const bm = mem.allocScratch(64);
        new Uint8Array(mem.memory.buffer).fill(0xcc, bm, bm + 64);
        const r = hot.fillPfns(LIST, n, 0, bm, 0);
        expect(r).toMatchObject({ filled: n, outOfRange: 0, firstBadIndex: -1, runs: 1 });
        const bytes = [...new Uint8Array(mem.memory.buffer, bm, Math.ceil(n / 8))];
        expect(bytes).toEqual(expectedBitmap(n, () => true));
        expect(new Uint8Array(mem.memory.buffer)[bm + Math.ceil(n / 8)]).toBe(0xcc); // nothing past ceil(n/8)
        for (const p of pfns) { expect(pageIs(mem, p, 0)).toBe(true); expect(mem.dirtyCovers(p * 4096, p * 4096 + 4096)).toBe(true); }
        expect(pageIs(mem, 700 - n, 0x11)).toBe(true);
        expect(pageIs(mem, 701, 0x11)).toBe(true);
        expect(mem.guardsIntact()).toBe(true);
        expect(mem.badDirty).toEqual([]);
        // fault injection: padding bits
        const r2 = hot.fillPfns(LIST, n, 0, bm, FILL_SET_PADDING);
        expect(r2.filled).toBe(n);
        expect([...new Uint8Array(mem.memory.buffer, bm, Math.ceil(n / 8))]).toEqual(expectedBitmap(n, () => true, true));
      });
    }

    it("out-of-range PFNs are skipped, counted, first index reported, bit 0; bitmap in guest RAM is dirtied", async () => {
      const { mem, hot } = await setup(impl);
      const pfns = [10, 11, PAGES, 12, 0xffffffff, PAGES - 1, 9, PAGES + 5, 13];
      putPfns(mem, pfns);
      mem.clearDirty();
      const r = hot.fillPfns(LIST, pfns.length, 0xab, GBM, FILL_BITMAP_GUEST);
      expect(r).toMatchObject({ filled: 6, outOfRange: 3, firstBadIndex: 2 });
      const bm = [...mem.bytes().subarray(GBM, GBM + 2)];
      expect(bm).toEqual(expectedBitmap(pfns.length, (i) => pfns[i]! < PAGES));
      expect(mem.dirtyCovers(GBM, GBM + 2)).toBe(true);
      for (const p of [9, 10, 11, 12, 13, PAGES - 1]) expect(pageIs(mem, p, 0xab)).toBe(true);
      expect(pageIs(mem, 8, 0x11)).toBe(true);
      expect(pageIs(mem, 14, 0x11)).toBe(true);
      expect(mem.guardsIntact()).toBe(true);
      expect(mem.badDirty).toEqual([]);
    });

    it("coalesces ascending and descending runs (one fill + one dirty per run)", async () => {
      const { mem, hot } = await setup(impl);
      const pfns = [100, 101, 102, 103, 50, 49, 48, 200, 300, 301, 301, 7];
      putPfns(mem, pfns);
      mem.clearDirty();
      const r = hot.fillPfns(LIST, pfns.length, 0, 0, 0);
      // runs: 100-103 | 50-48 | 200 | 300-301 | 7 (the second 301 already holds zeros: not rewritten)
      expect(r.runs).toBe(5);
      expect(r.pagesWritten).toBe(pfns.length - 1);
      expect(r.filled).toBe(pfns.length);
      if (impl === "wasm") expect(mem.dirtyRanges).toEqual([
        [100 * 4096, 104 * 4096], [48 * 4096, 51 * 4096], [200 * 4096, 201 * 4096],
        [300 * 4096, 302 * 4096], [7 * 4096, 8 * 4096],
      ]);
    });

    it("leaves pages that already hold the fill byte untouched and undirtied", async () => {
      const { mem, hot } = await setup(impl);
      const ram = mem.bytes();
      ram.fill(0, 60 * 4096, 63 * 4096); // pages 60..62 already zero
      ram[61 * 4096 + 4095] = 1; // ...but page 61's last byte is not
      putPfns(mem, [59, 60, 61, 62, 63]);
      mem.clearDirty();
      const r = hot.fillPfns(LIST, 5, 0, 0, 0);
      expect(r).toMatchObject({ filled: 5, pagesWritten: 3, runs: 3 });
      for (const p of [59, 60, 61, 62, 63]) expect(pageIs(mem, p, 0)).toBe(true);
      expect(mem.dirtyCovers(60 * 4096, 61 * 4096)).toBe(false);
      expect(mem.dirtyCovers(62 * 4096, 63 * 4096)).toBe(false);
      expect(mem.dirtyCovers(61 * 4096, 62 * 4096)).toBe(true);
    });

    it("flags: lie sets bits without filling, no-fill neither fills nor sets bits", async () => {
      const { mem, hot } = await setup(impl);
      putPfns(mem, [20, 21, 22]);
      const bm = mem.allocScratch(16);
      mem.clearDirty();
      expect(hot.fillPfns(LIST, 3, 0, bm, FILL_LIE).filled).toBe(3);
      expect(new Uint8Array(mem.memory.buffer)[bm]).toBe(0b111);
      expect(pageIs(mem, 20, 0x11)).toBe(true);
      expect(mem.dirtyRanges).toEqual([]);
      expect(hot.fillPfns(LIST, 3, 0, bm, FILL_NO_FILL).filled).toBe(0);
      expect(new Uint8Array(mem.memory.buffer)[bm]).toBe(0);
      expect(pageIs(mem, 21, 0x11)).toBe(true);
    });

    it("track bitmap: inflate marks, double inflate counted, deflate unmarks and counts never-inflated", async () => {
      const { mem, hot } = await setup(impl);
      const track = mem.allocScratch(PAGES / 8);
      putPfns(mem, [5, 6, 7, PAGES + 1]);
      let r = hot.fillPfns(LIST, 4, 0, 0, FILL_NO_FILL, track);
      expect(r).toMatchObject({ filled: 0, alreadyInflated: 0, outOfRange: 1, firstBadIndex: 3 });
      expect(new Uint8Array(mem.memory.buffer)[track]).toBe(0b11100000);
      putPfns(mem, [7, 8]);
      r = hot.fillPfns(LIST, 2, 0, 0, 0, track);
      expect(r).toMatchObject({ filled: 2, alreadyInflated: 1 });
      putPfns(mem, [5, 8, 9, 5, PAGES]);
      const u = hot.unmarkPfns(LIST, 5, track);
      expect(u).toEqual({ unmarked: 2, notInflated: 2, outOfRange: 1, firstBadIndex: 4 });
      expect([...new Uint8Array(mem.memory.buffer, track, 2)]).toEqual([0b11000000, 0]);
      expect(mem.guardsIntact()).toBe(true);
    });

    it("refuses PFN lists and guest bitmaps outside RAM without touching anything", async () => {
      const { mem, hot } = await setup(impl);
      const before = mem.bytes().slice();
      mem.clearDirty();
      expect(hot.fillPfns(RAM - 8, 4, 0, 0, 0).filled).toBe(-1);
      expect(hot.fillPfns(0xfffffffc, 2, 0, 0, 0).filled).toBe(-1);
      expect(hot.fillPfns(2 ** 32 + LIST, 2, 0, 0, 0).filled).toBe(-1);
      expect(hot.fillPfns(0, 0x40000001, 0, 0, 0).filled).toBe(-1);
      putPfns(mem, [1, 2, 3]);
      expect(hot.fillPfns(LIST, 3, 0, RAM, FILL_BITMAP_GUEST).filled).toBe(-2);
      expect(hot.fillPfns(LIST, 17, 0, RAM - 2, FILL_BITMAP_GUEST).filled).toBe(-2);
      expect(hot.unmarkPfns(RAM - 4, 2, 0).unmarked).toBe(-1);
      const after = mem.bytes();
      for (let i = LIST + 12; i < RAM; i += 4096) expect(after[i]).toBe(before[i]);
      expect(mem.dirtyRanges).toEqual([]);
      expect(mem.guardsIntact()).toBe(true);
    });

    it("count 0 is a no-op; highest page fills up to the last RAM byte only", async () => {
      const { mem, hot } = await setup(impl);
      expect(hot.fillPfns(LIST, 0, 0, 0, 0).filled).toBe(0);
      putPfns(mem, [PAGES - 1]);
      expect(hot.fillPfns(LIST, 1, 0x5a, 0, 0).filled).toBe(1);
      expect(pageIs(mem, PAGES - 1, 0x5a)).toBe(true);
      expect(mem.guardsIntact()).toBe(true);
    });

    it("fill_range: fills + dirties inside RAM, refuses empty / outside / wrapping ranges", async () => {
      const { mem, hot } = await setup(impl);
      mem.clearDirty();
      expect(hot.fillRange(0x200000, 4 << 20 >> 2, 0)).toBe(true);
      expect(mem.dirtyRanges).toEqual([[0x200000, 0x300000]]);
      expect(mem.bytes()[0x2fffff]).toBe(0);
      expect(mem.bytes()[0x300000]).toBe(0x11);
      expect(hot.fillRange(RAM - 4096, 4096, 0x77)).toBe(true);
      expect(hot.fillRange(RAM - 4096, 4097, 0)).toBe(false);
      expect(hot.fillRange(0, 0, 0)).toBe(false);
      expect(hot.fillRange(0xfffff000, 0x2000, 0)).toBe(false);
      expect(hot.fillRange(RAM, 1, 0)).toBe(false);
      expect(hot.fillRange(2 ** 32, 4096, 0)).toBe(false);
      expect(mem.guardsIntact()).toBe(true);
      expect(mem.badDirty).toEqual([]);
    });

    it("works at guest base 0 and at an odd base (no fixed layout assumption)", async () => {
      for (const base of [0, 8, 1 << 20]) {
        const { mem, hot } = await setup(impl, { base });
        putPfns(mem, [0, 1, PAGES - 1]);
        expect(hot.fillPfns(LIST, 3, 0x42, 0, 0).filled).toBe(3);
        expect(pageIs(mem, PAGES - 1, 0x42)).toBe(true);
        expect(mem.guardsIntact()).toBe(true);
      }
    });
  });
}

describe("loadHotPath options", () => {
  it("dirtyImport replaces mem.dirty; wasm bytes / compiled module accepted; instances are independent", async () => {
    const { readFile } = await import("node:fs/promises");
    const bytes = await readFile(new URL("../build/hotpath.wasm", import.meta.url));
    const mem = createTestMemory(RAM);
    const calls: Array<[number, number]> = [];
    const hot = await loadHotPath(mem, { wasm: bytes, dirtyImport: (s, e) => { calls.push([s, e]); } });
    expect(hot.fillRange(4096, 8192, 1)).toBe(true);
    expect(calls).toEqual([[4096, 12288]]);
    expect(mem.dirtyRanges).toEqual([]);
    const mod = await WebAssembly.compile(bytes);
    const hot2 = await loadHotPath(mem, { wasm: mod });
    putPfns(mem, [PAGES + 1]);
    expect(hot2.fillPfns(LIST, 1, 0, 0, 0).outOfRange).toBe(1);
    putPfns(mem, [1, 2]);
    expect(hot.fillPfns(LIST, 2, 0, 0, 0).outOfRange).toBe(0);
    expect(hot.kind).toBe("wasm");
  });
});

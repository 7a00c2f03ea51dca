import { describe, expect, it } from "vitest";
import {
  BALLOON_F, describeFeatures, featureBit, offeredFeatureBits, queueLayout, validateBalloonFeatures,
} from "../src/balloon/features.js";
import { allBytes, bits, le32, makeBalloon, PAGE, PFN_BASE, RAM_PAGES } from "./balloon-harness.js";

describe("balloon features", () => {
  it("offers bits 0..7 and VERSION_1 by default, and the host can switch any off", () => {
    const all = offeredFeatureBits();
    expect(describeFeatures(all)).toEqual([
      "MUST_TELL_HOST", "STATS_VQ", "DEFLATE_ON_OOM", "FREE_PAGE_HINT", "PAGE_POISON", "PAGE_REPORTING",
      "DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE", "VERSION_1",
    ]);
    const some = offeredFeatureBits({ DEVICE_INIT_REPORTED: false, MUST_TELL_HOST: false, STATS_VQ: false });
    expect(some & featureBit("DEVICE_INIT_REPORTED")).toBe(0n);
    expect(some & featureBit("MUST_TELL_HOST")).toBe(0n);
    expect(some & featureBit("STATS_VQ")).toBe(0n);
    expect(some & featureBit("VERSION_1")).not.toBe(0n);
    expect(describeFeatures(1n << 40n)).toEqual(["bit 40"]);
    expect(BALLOON_F.DEVICE_INIT_ON_INFLATE).toBe(7);
  });

  it("refuses bit 6 without bit 5, naming the rule", () => {
    const offered = offeredFeatureBits();
    const r = validateBalloonFeatures(bits("DEVICE_INIT_REPORTED"), offered);
    expect(r).toMatch(/init-reported-requires-reporting/);
    expect(r).toMatch(/bit 6 requires bit 5/);
    expect(validateBalloonFeatures(bits("DEVICE_INIT_REPORTED", "PAGE_REPORTING"), offered)).toBeNull();
  });

  it("refuses a set without VERSION_1, and bits never offered", () => {
    const offered = offeredFeatureBits({ PAGE_POISON: false });
    expect(validateBalloonFeatures(featureBit("STATS_VQ"), offered)).toMatch(/version-1-required/);
    expect(validateBalloonFeatures(bits("PAGE_POISON"), offered)).toMatch(/only-offered-bits: .*PAGE_POISON/);
    expect(validateBalloonFeatures(bits(), offered)).toBeNull();
  });

  it("the device refuses FEATURES_OK through validateFeatures (the transport reports it, once)", async () => {
    const h = await makeBalloon({ accept: bits("DEVICE_INIT_REPORTED"), noActivate: true });
    expect(h.refusal).toMatch(/requires/);
    expect(h.kinds()).toEqual([]);
    const h2 = await makeBalloon({ accept: featureBit("STATS_VQ"), noActivate: true });
    expect(h2.refusal).toMatch(/VERSION_1/);
  });
});

describe("balloon queue numbering (Linux's, over the negotiated features)", () => {
  it("numbers present queues only", () => {
    expect(queueLayout(offeredFeatureBits())).toEqual(["inflate", "deflate", "stats", "free-page", "reporting"]);
    expect(queueLayout(bits())).toEqual(["inflate", "deflate"]);
    expect(queueLayout(bits("PAGE_REPORTING"))).toEqual(["inflate", "deflate", "reporting"]);
    expect(queueLayout(bits("STATS_VQ", "PAGE_REPORTING"))).toEqual(["inflate", "deflate", "stats", "reporting"]);
    expect(queueLayout(bits("FREE_PAGE_HINT", "PAGE_REPORTING"))).toEqual(["inflate", "deflate", "free-page", "reporting"]);
  });

  it("queue 2 is the reporting queue without stats and hinting; max size 256 everywhere", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING") });
    expect(h.dev.queueCount(h.accepted)).toBe(3);
    expect(h.dev.queueMaxSize(0)).toBe(256);
    expect(h.dev.queueMaxSize(4)).toBe(256);
    h.paint(PFN_BASE, 1, 0x77);
    h.mqs[2]!.addChain([{ addr: PFN_BASE * PAGE, len: PAGE, write: true }]);
    h.dev.notify(2);
    expect(h.mqs[2]!.used()).toEqual([expect.objectContaining({ len: 0 })]);
    expect(allBytes(h.page(PFN_BASE), 0)).toBe(true);
    expect(h.transport.queueInterrupts).toEqual([2]);
  });
});

for (const hot of ["wasm", "js"] as const) {
  describe(`inflate / deflate (${hot} hot path)`, () => {
    it("inflate zero-fills the pages, marks them, used length 0 without bit 7", async () => {
      const h = await makeBalloon({ hot, accept: bits() });
      const pfns = [PFN_BASE + 3, PFN_BASE + 4, PFN_BASE + 5, PFN_BASE + 10];
      const events: number[] = [];
      h.dev.on("inflate", (e) => events.push(e.pages));
      h.mem.clearDirty();
      h.send("inflate", [{ data: le32(pfns) }]);
      const [u] = h.mq("inflate").used();
      expect(u!.len).toBe(0);
      for (const p of pfns) expect(allBytes(h.page(p), 0)).toBe(true);
      expect(allBytes(h.page(PFN_BASE + 6), 0x5a)).toBe(true);
      expect(h.mem.dirtyCovers((PFN_BASE + 3) * PAGE, (PFN_BASE + 6) * PAGE)).toBe(true);
      expect(h.dev.inflatedPages).toBe(4);
      expect(h.dev.isInflated(PFN_BASE + 10)).toBe(true);
      expect(events).toEqual([4]);
      expect(h.dev.counters().bytesZeroed).toBe(4 * PAGE);
      expect(h.transport.queueInterrupts).toEqual([0]);
      expect(h.diags).toEqual([]);

      h.send("deflate", [{ data: le32([PFN_BASE + 3, PFN_BASE + 10]) }]);
      expect(h.mq("deflate").used()[0]!.len).toBe(0);
      expect(h.dev.inflatedPages).toBe(2);
      expect(h.dev.isInflated(PFN_BASE + 3)).toBe(false);
      expect(h.dev.counters()).toMatchObject({ pagesInflated: 4, pagesDeflated: 2, requests: { inflate: 1, deflate: 1 } });
      expect(h.diags).toEqual([]);
      expect(h.mem.guardsIntact()).toBe(true);
    });

    it("inflate fills with poison_val's byte when PAGE_POISON is negotiated", async () => {
      const h = await makeBalloon({ hot, accept: bits("PAGE_POISON"), poisonVal: 0xaaaaaaaa });
      h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
      expect(allBytes(h.page(PFN_BASE), 0xaa)).toBe(true);
      expect(allBytes(h.page(PFN_BASE + 1), 0xaa)).toBe(true);
      expect(h.dev.counters()).toMatchObject({ bytesPoisoned: 2 * PAGE, bytesZeroed: 0 });
      const z = await makeBalloon({ hot, accept: bits("PAGE_POISON"), poisonVal: 0 });
      z.send("inflate", [{ data: le32([PFN_BASE]) }]);
      expect(allBytes(z.page(PFN_BASE), 0)).toBe(true);
    });

    for (const n of [1, 4, 8, 9, 256]) {
      it(`bit 7: ${n} PFNs give the exact bitmap and used length ceil(N/8)`, async () => {
        const h = await makeBalloon({ hot, accept: bits("DEVICE_INIT_ON_INFLATE") });
        const pfns = Array.from({ length: n }, (_, i) => PFN_BASE + 2 * i);
        const need = Math.ceil(n / 8);
        const c = h.send("inflate", [{ data: le32(pfns) }, { len: need + 3, write: true, fill: 0xee }]);
        const [u] = h.mq("inflate").used();
        expect(u!.len).toBe(need);
        const bm = h.mq("inflate").read(c.buffers[1]!.addr, need + 3);
        const expected = new Uint8Array(need + 3).fill(0xee);
        for (let i = 0; i < need; i++) expected[i] = 0;
        for (let i = 0; i < n; i++) expected[i >> 3]! |= 1 << (i & 7);
        expect([...bm]).toEqual([...expected]);
        for (const p of pfns) expect(allBytes(h.page(p), 0)).toBe(true);
        expect(h.dev.counters().bitmapsWritten).toBe(1);
        expect(h.diags.map((d) => d.kind)).toEqual([]);
        expect(h.mem.dirtyCovers(c.buffers[1]!.addr, c.buffers[1]!.addr + need)).toBe(true);
      });
    }

    it("bit 7: mixed valid / invalid PFNs set only the valid bits and write nothing for the bad ones", async () => {
      const h = await makeBalloon({ hot, accept: bits("DEVICE_INIT_ON_INFLATE") });
      const pfns = [PFN_BASE, 0xffffffff, PFN_BASE + 1, RAM_PAGES, PFN_BASE + 2, RAM_PAGES - 1, 0x80000000, PFN_BASE + 3, PFN_BASE + 4];
      const c = h.send("inflate", [{ data: le32(pfns) }, { len: 2, write: true, fill: 0xee }]);
      const [u] = h.mq("inflate").used();
      expect(u!.len).toBe(2);
      expect([...h.mq("inflate").read(c.buffers[1]!.addr, 2)]).toEqual([0b10110101, 0b1]);
      const d = h.diags.find((x) => x.kind === "pfn-out-of-range")!;
      expect(d.detail).toMatchObject({ firstBadPfn: 0xffffffff, firstBadIndex: 1, outOfRange: 3 });
      expect(d.message).toMatch(/PFN 0xffffffff \(index 1\)/);
      expect(allBytes(h.page(RAM_PAGES - 1), 0)).toBe(true);
      expect(h.dev.inflatedPages).toBe(6);
      expect(h.mem.guardsIntact()).toBe(true);
      expect(h.mem.badDirty).toEqual([]);
    });

    it("bit 7: a bitmap shorter than ceil(N/8) is diagnosed and not written at all", async () => {
      const h = await makeBalloon({ hot, accept: bits("DEVICE_INIT_ON_INFLATE") });
      const pfns = Array.from({ length: 20 }, (_, i) => PFN_BASE + i);
      // 20 PFNs need 3 bytes; give 2, followed by a sentinel byte the device must not touch.
      const c = h.send("inflate", [{ data: le32(pfns) }, { len: 2, write: true, fill: 0xee }]);
      const sentinel = c.buffers[1]!.addr + 2;
      h.mem.bytes()[sentinel] = 0xcd;
      const [u] = h.mq("inflate").used();
      expect(u!.len).toBe(0);
      expect([...h.mq("inflate").read(c.buffers[1]!.addr, 3)]).toEqual([0xee, 0xee, 0xcd]);
      expect(h.kinds()).toEqual(["bitmap-too-short"]);
      expect(h.diags[0]!.detail).toMatchObject({ needBytes: 3, writableBytes: 2, pfns: 20 });
      expect(h.dev.counters().bitmapsWritten).toBe(0);
      expect(h.dev.inflatedPages).toBe(20);
      expect(h.mem.guardsIntact()).toBe(true);
    });

    it("bit 7: a PFN list split over several descriptors still gives one contiguous bitmap", async () => {
      const h = await makeBalloon({ hot, accept: bits("DEVICE_INIT_ON_INFLATE") });
      const a = [PFN_BASE, PFN_BASE + 1, RAM_PAGES + 5]; // 3 PFNs (bit offset not byte aligned after)
      const b = [PFN_BASE + 2, PFN_BASE + 3, PFN_BASE + 4, PFN_BASE + 5, PFN_BASE + 6, PFN_BASE + 7];
      const c = h.send("inflate", [{ data: le32(a) }, { data: le32(b) }, { len: 1, write: true }, { len: 4, write: true, fill: 0xee }]);
      const [u] = h.mq("inflate").used();
      expect(u!.len).toBe(2);
      expect(h.mq("inflate").read(c.buffers[2]!.addr, 1)[0]).toBe(0b11111011);
      expect([...h.mq("inflate").read(c.buffers[3]!.addr, 2)]).toEqual([0b1, 0xee]);
    });

    it("bit 7: a bitmap split over two device-writable descriptors is written across both", async () => {
      const h = await makeBalloon({ hot, accept: bits("DEVICE_INIT_ON_INFLATE") });
      const pfns = Array.from({ length: 12 }, (_, i) => (i === 9 ? RAM_PAGES : PFN_BASE + i));
      const c = h.send("inflate", [{ data: le32(pfns) }, { len: 1, write: true }, { len: 3, write: true, fill: 0xee }]);
      const [u] = h.mq("inflate").used();
      expect(u!.len).toBe(2);
      expect(h.mq("inflate").read(c.buffers[1]!.addr, 1)[0]).toBe(0xff);
      expect([...h.mq("inflate").read(c.buffers[2]!.addr, 3)]).toEqual([0b1101, 0xee, 0xee]);
      expect(h.mem.dirtyCovers(c.buffers[2]!.addr, c.buffers[2]!.addr + 1)).toBe(true);
    });

    it("deflate of pages never inflated is diagnosed but acknowledged; no fill on deflate", async () => {
      const h = await makeBalloon({ hot, accept: bits() });
      h.send("inflate", [{ data: le32([PFN_BASE]) }]);
      h.paint(PFN_BASE, 2, 0x33);
      h.send("deflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
      expect(h.mq("deflate").used()).toHaveLength(1);
      expect(h.kinds()).toEqual(["deflate-not-inflated"]);
      expect(h.diags[0]!.detail).toMatchObject({ notInflated: 1 });
      expect(allBytes(h.page(PFN_BASE), 0x33)).toBe(true);
      expect(h.dev.inflatedPages).toBe(0);
    });
  });
}

describe("balloon config space", () => {
  it("reads num_pages / actual / cmd id / poison_val little-endian at any width and offset", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT", "PAGE_POISON"), poisonVal: 0x11111111 });
    h.host.setTarget(0x0e34);
    h.dev.writeConfig(4, 4, 0x0102);
    expect(h.dev.readConfig(0, 4)).toBe(0x0e34);
    expect(h.dev.readConfig(0, 1)).toBe(0x34);
    expect(h.dev.readConfig(1, 2)).toBe(0x0e);
    expect(h.dev.readConfig(3, 2)).toBe(0x0200);
    expect(h.dev.readConfig(4, 4)).toBe(0x0102);
    expect(h.dev.readConfig(8, 4)).toBe(1); // DONE before any cycle
    expect(h.dev.readConfig(12, 4)).toBe(0x11111111);
    expect(h.dev.readConfig(14, 2)).toBe(0x1111);
  });

  it("writes to num_pages and free_page_hint_cmd_id are diagnosed and ignored", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT") });
    h.host.setTarget(100);
    h.dev.writeConfig(0, 4, 7);
    h.dev.writeConfig(9, 1, 7);
    expect(h.dev.readConfig(0, 4)).toBe(100);
    expect(h.dev.readConfig(8, 4)).toBe(1);
    expect(h.kinds()).toEqual(["write-to-read-only-field", "write-to-read-only-field"]);
    expect(h.diags[0]!.detail).toMatchObject({ field: "num_pages" });
    expect(h.diags[1]!.detail).toMatchObject({ field: "free_page_hint_cmd_id" });
    // A 4-byte write straddling num_pages and actual: the actual bytes land, the num_pages bytes do not.
    h.dev.writeConfig(2, 4, 0x00050000);
    expect(h.dev.readConfig(0, 4)).toBe(100);
    expect(h.dev.readConfig(4, 4)).toBe(0);
  });

  it("actual: sub-width writes commit when the most significant byte is written", async () => {
    const h = await makeBalloon({ accept: bits() });
    h.host.setTarget(0x200);
    h.send("inflate", [{ data: le32(Array.from({ length: 256 }, (_, i) => PFN_BASE + i)) }]);
    h.send("inflate", [{ data: le32(Array.from({ length: 256 }, (_, i) => PFN_BASE + 256 + i)) }]);
    const seen: number[] = [];
    h.host.on("actual", (e) => seen.push(e.pages));
    h.dev.writeConfig(4, 1, 0x00);
    h.dev.writeConfig(5, 1, 0x02);
    h.dev.writeConfig(6, 1, 0x00);
    expect(seen).toEqual([]);
    h.dev.writeConfig(7, 1, 0x00);
    expect(seen).toEqual([0x200]);
    h.dev.writeConfig(4, 2, 0x100);
    h.dev.writeConfig(6, 2, 0);
    expect(seen).toEqual([0x200, 0x100]);
    expect(h.host.actual).toBe(0x100);
    expect(h.diags).toEqual([]);
  });

  it("actual above RAM / target / inflated pages: diagnosed, recorded, clamped for accounting", async () => {
    const h = await makeBalloon({ accept: bits() });
    h.host.setTarget(10);
    const events: Array<{ pages: number; raw: number }> = [];
    h.host.on("actual", (e) => events.push({ pages: e.pages, raw: e.raw }));
    h.dev.writeConfig(4, 4, RAM_PAGES + 1000);
    expect(h.kinds()).toEqual(["actual-above-ram", "actual-above-target"]);
    expect(h.host.actual).toBe(RAM_PAGES);
    expect(h.dev.actualUnclamped).toBe(RAM_PAGES + 1000);
    expect(h.dev.readConfig(4, 4)).toBe(RAM_PAGES + 1000);
    expect(events).toEqual([{ pages: RAM_PAGES, raw: RAM_PAGES + 1000 }]);
    h.dev.writeConfig(4, 4, 0xffffffff);
    expect(h.host.actual).toBe(RAM_PAGES);
    h.diags.length = 0;
    h.dev.writeConfig(4, 4, 5);
    expect(h.kinds()).toEqual(["actual-above-inflated"]);
    expect(h.mem.guardsIntact()).toBe(true);
  });
});

describe("balloon inflate bookkeeping", () => {
  it("ignores PAGE-size details: a 4 MiB inflate in one request is handled (diagnosed as > 256 PFNs)", async () => {
    const h = await makeBalloon({ accept: bits("DEVICE_INIT_ON_INFLATE") });
    const n = 1024;
    const pfns = Array.from({ length: n }, (_, i) => PFN_BASE + i);
    h.send("inflate", [{ data: le32(pfns) }, { len: n / 8, write: true }]);
    expect(h.mq("inflate").used()[0]!.len).toBe(n / 8);
    expect(h.kinds()).toEqual(["too-many-pfns"]);
    expect(h.dev.inflatedPages).toBe(n);
  });
});

/**
 * Every bad-input rule: its diagnostic kind is emitted, no exception escapes, nothing is written outside
 * guest RAM (test memory guards intact, no out-of-range dirty), and the chain comes back used.
 */
import { afterAll, describe, expect, it } from "vitest";
import { CONFORMANCE } from "../src/balloon/diagnostics.js";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./support/mock-driver.js";
import { allBytes, bits, le32, makeBalloon, PAGE, PFN_BASE, RAM, RAM_PAGES, statsBuf, type Harness, type HarnessOptions } from "./balloon-harness.js";

const seen = new Set<string>();

async function scenario(opts: HarnessOptions, run: (h: Harness) => void): Promise<Harness> {
  const h = await makeBalloon(opts);
  expect(() => run(h)).not.toThrow();
  for (const k of h.kinds()) seen.add(k);
  expect(h.mem.guardDamage()).toBeNull();
  expect(h.mem.badDirty).toEqual([]);
  return h;
}

describe("balloon diagnostics: inflate / deflate", () => {
  it("pfn-buffer-misaligned: whole request refused, nothing written, used 0", async () => {
    const h = await scenario({ accept: bits("DEVICE_INIT_ON_INFLATE") }, (h) => {
      const pfn = le32([PFN_BASE, PFN_BASE + 1]);
      h.send("inflate", [{ data: pfn.subarray(0, 6) }, { len: 1, write: true, fill: 0xee }]);
    });
    expect(h.kinds()).toEqual(["pfn-buffer-misaligned"]);
    expect(h.mq("inflate").used()[0]!.len).toBe(0);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
    expect(h.dev.inflatedPages).toBe(0);
    const d = await scenario({ accept: bits() }, (h) => h.send("deflate", [{ data: [1, 2, 3] }]));
    expect(d.kinds()).toEqual(["pfn-buffer-misaligned"]);
  });

  it("pfn-buffer-empty", async () => {
    const h = await scenario({ accept: bits("DEVICE_INIT_ON_INFLATE") }, (h) => h.send("inflate", [{ len: 4, write: true, fill: 0xee }]));
    expect(h.kinds()).toEqual(["pfn-buffer-empty"]);
    expect(h.mq("inflate").used()[0]!.len).toBe(0);
  });

  it("pfn-out-of-range on inflate and deflate: skipped, never written", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      h.send("inflate", [{ data: le32([RAM_PAGES, PFN_BASE, 0xfffff]) }]);
      h.send("deflate", [{ data: le32([PFN_BASE, 0xffffffff]) }]);
    });
    expect(h.kinds()).toEqual(["pfn-out-of-range", "pfn-out-of-range"]);
    expect(h.diags[0]!.detail).toMatchObject({ firstBadPfn: RAM_PAGES, firstBadIndex: 0, outOfRange: 2 });
    expect(h.diags[1]!.detail).toMatchObject({ firstBadPfn: 0xffffffff, firstBadIndex: 1 });
    expect(h.dev.inflatedPages).toBe(0);
  });

  it("too-many-pfns: handled anyway", async () => {
    const h = await scenario({ accept: bits() }, (h) => h.send("inflate", [{ data: le32(Array.from({ length: 257 }, (_, i) => PFN_BASE + i)) }]));
    expect(h.kinds()).toEqual(["too-many-pfns"]);
    expect(h.dev.inflatedPages).toBe(257);
  });

  it("bitmap-too-short (including no bitmap at all)", async () => {
    const h = await scenario({ accept: bits("DEVICE_INIT_ON_INFLATE") }, (h) => {
      h.send("inflate", [{ data: le32([PFN_BASE]) }]);
      h.send("inflate", [{ data: le32(Array.from({ length: 9 }, (_, i) => PFN_BASE + 1 + i)) }, { len: 1, write: true }]);
    });
    expect(h.kinds()).toEqual(["bitmap-too-short", "bitmap-too-short"]);
    expect(h.mq("inflate").used().map((u) => u.len)).toEqual([0, 0]);
  });

  it("unexpected-writable: inflate without bit 7, deflate, stats — the writable bytes are never touched", async () => {
    const h = await scenario({ accept: bits("STATS_VQ") }, (h) => {
      const c = h.send("inflate", [{ data: le32([PFN_BASE]) }, { len: 4, write: true, fill: 0xee }]);
      expect(allBytes(h.mq("inflate").read(c.buffers[1]!.addr, 4), 0xee)).toBe(true);
      h.send("deflate", [{ data: le32([PFN_BASE]) }, { len: 4, write: true }]);
      h.send("stats", [{ data: statsBuf([[4, 1]]) }, { len: 4, write: true }]);
    });
    expect(h.kinds()).toEqual(["unexpected-writable", "unexpected-writable", "unexpected-writable"]);
    expect(h.mq("inflate").used()[0]!.len).toBe(0);
  });

  it("inflate-already-inflated and deflate-not-inflated", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE]) }]);
      h.send("deflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
    });
    expect(h.kinds()).toEqual(["inflate-already-inflated", "deflate-not-inflated"]);
    expect(h.dev.inflatedPages).toBe(0);
  });
});

describe("balloon diagnostics: config", () => {
  it("actual-above-ram / actual-above-target / actual-above-inflated", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      h.dev.writeConfig(4, 4, RAM_PAGES + 1);
      h.dev.writeConfig(4, 4, 3);
    });
    expect(h.kinds()).toEqual(["actual-above-ram", "actual-above-target", "actual-above-inflated"]);
  });

  it("write-to-read-only-field", async () => {
    const h = await scenario({ accept: bits("FREE_PAGE_HINT") }, (h) => {
      h.dev.writeConfig(0, 2, 0xffff);
      h.dev.writeConfig(8, 4, 5);
    });
    expect(h.kinds()).toEqual(["write-to-read-only-field", "write-to-read-only-field"]);
    expect(h.dev.readConfig(0, 4)).toBe(0);
  });

  it("poison-val-changed-while-live / -without-feature / -not-byte-pattern", async () => {
    const a = await scenario({ accept: bits("PAGE_POISON"), poisonVal: 0 }, (h) => h.dev.writeConfig(12, 4, 0xaaaaaaaa));
    expect(a.kinds()).toEqual(["poison-val-changed-while-live"]);
    const b = await scenario({ accept: bits() }, (h) => h.dev.writeConfig(12, 4, 0xaaaaaaaa));
    expect(b.kinds()).toEqual(["poison-val-without-feature"]);
    const c = await scenario({ accept: bits("PAGE_POISON"), poisonVal: 0xaa55aa55 }, () => {});
    expect(c.kinds()).toContain("poison-val-not-byte-pattern");
  });

  it("target-above-ram (host) is clamped", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      expect(h.host.setTargetBytes(RAM * 2)).toBe(RAM_PAGES);
    });
    expect(h.kinds()).toEqual(["target-above-ram"]);
    expect(h.dev.readConfig(0, 4)).toBe(RAM_PAGES);
  });

  it("features-refused", async () => {
    const h = await scenario({ accept: bits("DEVICE_INIT_REPORTED"), noActivate: true }, () => {});
    expect(h.kinds()).toEqual(["features-refused"]);
  });
});

describe("balloon diagnostics: queues and chains", () => {
  it("notify-disabled-queue (unknown index, not activated)", async () => {
    const h = await scenario({ accept: bits() }, (h) => h.dev.notify(7));
    expect(h.kinds()).toEqual(["notify-disabled-queue"]);
    const n = await scenario({ accept: bits(), noActivate: true }, (h) => h.dev.notify(0));
    expect(n.kinds()).toEqual(["notify-disabled-queue"]);
  });

  it("queue-too-small (reporting queue under 32 entries)", async () => {
    const h = await scenario({ accept: bits("PAGE_REPORTING"), queueSize: 16 }, () => {});
    expect(h.kinds()).toEqual(["queue-too-small"]);
  });

  it("malformed chains: ChainError kinds passed through, head returned with used length 0", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      const q = h.mq("inflate");
      const buf = q.alloc(16);
      // loop: 0 -> 1 -> 0
      q.desc(0, { addr: buf, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 });
      q.desc(1, { addr: buf, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 });
      q.publish(0);
      // segment outside RAM (and one wrapping past 2^32)
      q.desc(2, { addr: RAM - 2, len: 4 });
      q.publish(2);
      q.desc(3, { addr: 0xfffffff0n, len: 0x20 });
      q.publish(3);
      // zero length
      q.desc(4, { addr: buf, len: 0 });
      q.publish(4);
      // readable after writable
      q.desc(5, { addr: buf, len: 4, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 6 });
      q.desc(6, { addr: buf, len: 4 });
      q.publish(5);
      // indirect without VIRTIO_F_INDIRECT_DESC
      q.desc(7, { addr: buf, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
      q.publish(7);
      // next out of range, head out of range
      q.desc(8, { addr: buf, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 999 });
      q.publish(8);
      q.publish(300);
      h.kick("inflate");
    });
    expect(h.kinds()).toEqual([
      "loop", "segment-out-of-ram", "segment-out-of-ram", "zero-length", "readable-after-writable",
      "indirect-not-negotiated", "next-out-of-range", "head-out-of-range",
    ]);
    const used = h.mq("inflate").used();
    // Every consumed head comes back with used length 0, except the one that is not a descriptor index.
    expect(used.map((u) => u.len)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(used.map((u) => u.id)).toEqual([0, 2, 3, 4, 5, 7, 8]);
    expect(h.diags.every((d) => d.queue === 0 && d.severity === "violation")).toBe(true);
    expect(h.transport.resets).toEqual([]);
  });

  it("avail-idx-jump: no head consumed, DEVICE_NEEDS_RESET requested", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      h.mq("inflate").setAvailIdx(1000);
      h.kick("inflate");
    });
    expect(h.kinds()).toEqual(["avail-idx-jump"]);
    expect(h.transport.resets).toHaveLength(1);
    expect(h.mq("inflate").used()).toEqual([]);
  });

  it("chain-error (hot path refuses a PFN list) and device-internal-error (an exception inside): used 0, no throw", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      h.hot.fillPfns = () => ({ filled: -1, outOfRange: 0, firstBadIndex: -1, alreadyInflated: 0, runs: 0, pagesWritten: 0 });
      h.send("inflate", [{ data: le32([PFN_BASE]) }]);
      h.hot.fillPfns = () => { throw new Error("boom"); };
      h.send("inflate", [{ data: le32([PFN_BASE]) }]);
    });
    expect(h.kinds()).toEqual(["chain-error", "device-internal-error"]);
    expect(h.mq("inflate").used().map((u) => u.len)).toEqual([0, 0]);
  });
});

describe("balloon diagnostics: stats, hinting, reporting", () => {
  it("stats-buffer-misaligned / stats-extra-buffer", async () => {
    const h = await scenario({ accept: bits("STATS_VQ") }, (h) => {
      h.send("stats", [{ data: [1, 2, 3] }]);
      h.send("stats", [{ data: statsBuf([[4, 1]]) }]);
    });
    expect(h.kinds()).toEqual(["stats-buffer-misaligned", "stats-extra-buffer"]);
  });

  it("hint-cmd-id-bad-size / -mismatch / -repeated / hint-pages-ignored", async () => {
    const h = await scenario({ accept: bits("FREE_PAGE_HINT") }, (h) => {
      h.send("free-page", [{ addr: PFN_BASE * PAGE, len: PAGE, write: true }]);
      h.host.startHinting();
      h.send("free-page", [{ data: le32([2, 2]) }]);
      h.send("free-page", [{ data: le32([7]) }]);
      h.send("free-page", [{ data: le32([2]) }]);
      h.send("free-page", [{ data: le32([2]) }]);
    });
    expect(h.kinds()).toEqual(["hint-pages-ignored", "hint-cmd-id-bad-size", "hint-cmd-id-mismatch", "hint-cmd-id-repeated"]);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
  });

  it("report-without-pages / unexpected-readable / range-not-page-aligned (only the range's bytes touched)", async () => {
    const h = await scenario({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED") }, (h) => {
      h.send("reporting", [{ data: [1, 2, 3, 4] }]);
      h.send("reporting", [{ addr: PFN_BASE * PAGE + 100, len: 200, write: true }]);
    });
    expect(h.kinds()).toEqual(["unexpected-readable", "report-without-pages", "range-not-page-aligned"]);
    const p = h.page(PFN_BASE);
    expect(allBytes(p.subarray(0, 100), 0x5a)).toBe(true);
    expect(allBytes(p.subarray(100, 300), 0)).toBe(true);
    expect(allBytes(p.subarray(300), 0x5a)).toBe(true);
    expect(h.mq("reporting").used().map((u) => u.len)).toEqual([0, 200]);
  });
});

afterAll(() => {
  // Every named balloon diagnostic kind has a test above.
  const missing = Object.keys(CONFORMANCE).filter((k) => !seen.has(k));
  expect(missing).toEqual([]);
});

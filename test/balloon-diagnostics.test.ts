/**
 * Every bad-input rule: its diagnostic kind is emitted, no exception escapes, nothing is written outside
 * guest RAM (test memory guards intact, no out-of-range dirty), and the chain comes back used.
 */
import { afterAll, describe, expect, it } from "vitest";
import { CONFORMANCE } from "../src/balloon/diagnostics.js";
import { NOTIFY_WORK_BUDGET } from "../src/balloon/device.js";
import { featureBit, offeredFeatureBits } from "../src/balloon/features.js";
import { MAX_PFNS_PER_REQUEST } from "../src/balloon/inflate.js";
import { TRANSPORT_DIAGNOSTIC_KINDS } from "../src/virtio/pci-transport.js";
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

describe("balloon diagnostics: indirect tables and broken rings", () => {
  it("too-many-segments / bad-indirect-table / nested-indirect / indirect-with-next / desc-table-out-of-ram", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      const q = h.mq("inflate");
      h.vqs[0]!.allowIndirect = true;
      const buf = q.alloc(16);
      // An indirect table of 300 chained descriptors: more than the 256 segments a chain may have.
      const long = q.indirectTable(Array.from({ length: 300 }, (_, i) => ({ addr: buf, len: 4, flags: i < 299 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 })));
      q.desc(0, { addr: long.addr, len: long.len, flags: VIRTQ_DESC_F_INDIRECT });
      q.publish(0);
      q.desc(1, { addr: buf, len: 12, flags: VIRTQ_DESC_F_INDIRECT }); // not whole descriptors
      q.publish(1);
      const nested = q.indirectTable([{ addr: buf, len: 16, flags: VIRTQ_DESC_F_INDIRECT }]);
      q.desc(2, { addr: nested.addr, len: nested.len, flags: VIRTQ_DESC_F_INDIRECT });
      q.publish(2);
      const plain = q.indirectTable([{ addr: buf, len: 4 }]);
      q.desc(3, { addr: plain.addr, len: plain.len, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 4 });
      q.publish(3);
      h.kick("inflate");
      // A descriptor table the transport would never accept (registers poked directly).
      q.addChain([{ data: le32([PFN_BASE]) }]);
      h.vqs[0]!.descAddr = RAM;
      h.kick("inflate");
    });
    expect(h.kinds()).toEqual(["too-many-segments", "bad-indirect-table", "nested-indirect", "indirect-with-next", "desc-table-out-of-ram"]);
  });
});

describe("balloon diagnostics: bounded work per notify", () => {
  it("pfn-list-too-long: one descriptor {addr 0, len = RAM} is refused whole, with a work counter far below RAM", async () => {
    const h = await scenario({ accept: bits("DEVICE_INIT_ON_INFLATE") }, (h) => {
      h.send("inflate", [{ addr: 0, len: RAM }, { len: 512, write: true }]);
    });
    expect(h.kinds()).toEqual(["pfn-list-too-long"]);
    expect(h.mq("inflate").used()).toEqual([expect.objectContaining({ len: 0 })]);
    expect(h.dev.inflatedPages).toBe(0);
    expect(h.dev.counters().notifyWork.last).toBeLessThan(16);
  });

  it("a full queue of 1024-PFN lists of PFN 0 runs in budget-sized notifies, continued in later host tasks", async () => {
    const h = await makeBalloon({ accept: bits() });
    const q = h.mq("inflate");
    const list = q.alloc(4096, 4096);
    q.write(list, new Uint8Array(4096)); // 1024 x PFN 0
    for (let i = 0; i < 64; i++) q.addChain([{ addr: list, len: 4096 }]);
    h.kick("inflate");
    const c = h.dev.counters().notifyWork;
    expect(c.deferred).toBe(1);
    expect(c.max).toBeLessThanOrEqual(NOTIFY_WORK_BUDGET + MAX_PFNS_PER_REQUEST + 1);
    let used = q.used().length;
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(64);
    for (let i = 0; i < 64 && used < 64; i++) {
      h.clock.advance(1);
      used += q.used().length;
    }
    expect(used).toBe(64);
    expect(h.dev.counters().notifyWork.max).toBeLessThanOrEqual(NOTIFY_WORK_BUDGET + MAX_PFNS_PER_REQUEST + 1);
    expect(h.kinds().filter((k) => k !== "too-many-pfns" && k !== "inflate-already-inflated")).toEqual([]);
  });

  it("ranges-overlap: 90 overlapping reports of half of RAM refused, nothing filled; bit-6 used length never wraps", async () => {
    const h = await scenario({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED") }, (h) => {
      h.send("reporting", Array.from({ length: 90 }, () => ({ addr: PFN_BASE * PAGE, len: RAM / 2, write: true })));
    });
    expect(h.kinds()).toEqual(["ranges-overlap"]);
    expect(h.mq("reporting").used()).toEqual([expect.objectContaining({ len: 0 })]);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
    expect(h.dev.counters().notifyWork.last).toBeLessThan(16);
  });

  it("ranges-overlap on the free-page (hinting) queue", async () => {
    const h = await scenario({ accept: bits("FREE_PAGE_HINT") }, (h) => {
      const id = h.host.startHinting()!;
      h.send("free-page", [{ data: le32([id]) }]);
      h.send("free-page", [{ addr: PFN_BASE * PAGE, len: 2 * PAGE, write: true }, { addr: (PFN_BASE + 1) * PAGE, len: PAGE, write: true }]);
    });
    expect(h.kinds()).toEqual(["ranges-overlap"]);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
  });
});

describe("balloon diagnostics: the right PFN, host-side limits", () => {
  it("pfn-out-of-range names the PFN the driver sent, even when the list lies in a page the request fills", async () => {
    const h = await scenario({ accept: bits() }, (h) => {
      const q = h.mq("inflate");
      const list = q.alloc(4096, 4096);
      q.write(list, le32([list / PAGE, RAM_PAGES + 5]));
      q.addChain([{ addr: list, len: 8 }]);
      h.kick("inflate");
    });
    expect(h.kinds()).toEqual(["pfn-out-of-range"]);
    expect(h.diags[0]!.detail.firstBadPfn).toBe(RAM_PAGES + 5);
  });

  it("stats-interval-out-of-range: 30 days clamped to 2^31-1 ms, 0.1 ms to 1 ms, NaN refused", async () => {
    const h = await scenario({ accept: bits("STATS_VQ") }, (h) => {
      h.host.setStatsInterval(30 * 24 * 3600);
      expect(h.host.statsInterval).toBe((2 ** 31 - 1) / 1000);
      h.host.setStatsInterval(0.0001);
      expect(h.host.statsInterval).toBe(0.001);
      h.host.setStatsInterval(Number.NaN);
      expect(h.host.statsInterval).toBe(0.001);
    });
    expect(h.kinds()).toEqual(["stats-interval-out-of-range", "stats-interval-out-of-range", "stats-interval-out-of-range"]);
    expect(h.diags.every((d) => d.severity === "host")).toBe(true);
  });

  it("offer-dependency: DEVICE_INIT_REPORTED asked for without PAGE_REPORTING is not offered, with a warning", async () => {
    const h = await makeBalloon({ accept: bits(), features: { PAGE_REPORTING: false, DEVICE_INIT_REPORTED: true } });
    expect(h.dev.offeredFeatures() & featureBit("DEVICE_INIT_REPORTED")).toBe(0n);
    expect(h.host.features.warnings).toEqual([expect.stringMatching(/DEVICE_INIT_REPORTED requires PAGE_REPORTING/)]);
    expect(h.dev.counters().diagnosticsByKind).toEqual({ "offer-dependency": 1 });
    expect(offeredFeatureBits({ PAGE_REPORTING: false }) & featureBit("DEVICE_INIT_REPORTED")).toBe(0n);
    seen.add("offer-dependency");
  });
});

afterAll(() => {
  // Every named balloon diagnostic kind has a test above.
  // Transport kinds are covered in transport-diagnostics.test.ts.
  const missing = Object.keys(CONFORMANCE).filter((k) => !seen.has(k) && !(TRANSPORT_DIAGNOSTIC_KINDS as readonly string[]).includes(k));
  expect(missing).toEqual([]);
});

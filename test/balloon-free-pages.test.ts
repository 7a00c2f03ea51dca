import { describe, expect, it } from "vitest";
import type { HintEvent, ReportEvent } from "../src/balloon/events.js";
import { allBytes, bits, le32, makeBalloon, PAGE, PFN_BASE } from "./balloon-harness.js";

const range = (pfn: number, pages: number) => ({ addr: pfn * PAGE, len: pages * PAGE, write: true });

describe("free page reporting", () => {
  it("without bit 6: pages zeroed, used length 0", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING") });
    h.paint(PFN_BASE, 16, 0x77);
    const ev: ReportEvent[] = [];
    h.host.on("report", (e) => ev.push(e));
    h.send("reporting", [range(PFN_BASE, 2), range(PFN_BASE + 4, 2), range(PFN_BASE + 8, 2)]);
    expect(h.mq("reporting").used()[0]!.len).toBe(0);
    for (const p of [0, 1, 4, 5, 8, 9]) expect(allBytes(h.page(PFN_BASE + p), 0)).toBe(true);
    for (const p of [2, 3, 6, 7, 10]) expect(allBytes(h.page(PFN_BASE + p), 0x77)).toBe(true);
    expect(ev).toEqual([expect.objectContaining({ ranges: 3, pages: 6, filledBytes: 6 * PAGE, usedLen: 0 })]);
    expect(h.dev.counters()).toMatchObject({ pagesReported: 6, bytesZeroed: 6 * PAGE, requests: { report: 1 } });
    expect(h.mem.dirtyCovers(PFN_BASE * PAGE, (PFN_BASE + 2) * PAGE)).toBe(true);
  });

  it("with bit 6: pages zeroed, used length = bytes initialised (4096 * pages)", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED") });
    h.paint(PFN_BASE, 16, 0x77);
    h.send("reporting", [range(PFN_BASE, 2), range(PFN_BASE + 4, 1), range(PFN_BASE + 8, 3)]);
    expect(h.mq("reporting").used()[0]!.len).toBe(6 * PAGE);
    for (const p of [0, 1, 4, 8, 9, 10]) expect(allBytes(h.page(PFN_BASE + p), 0)).toBe(true);
    expect(h.diags).toEqual([]);
  });

  it("zeroFreedPages: false leaves reported pages alone without poison / bit 6", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING"), zeroFreedPages: false });
    h.paint(PFN_BASE, 2, 0x77);
    h.send("reporting", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE), 0x77)).toBe(true);
    expect(h.mq("reporting").used()[0]!.len).toBe(0);
  });

  it("PAGE_POISON without bit 6: filled with poison_val's byte only, used length 0", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "PAGE_POISON"), poisonVal: 0xaaaaaaaa, zeroFreedPages: false });
    h.paint(PFN_BASE, 2, 0x77);
    h.send("reporting", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE + 1), 0xaa)).toBe(true);
    expect(h.mq("reporting").used()[0]!.len).toBe(0);
    expect(h.dev.counters().bytesPoisoned).toBe(2 * PAGE);
  });

  it("PAGE_POISON with bit 6: filled with poison, used length covers them", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "PAGE_POISON", "DEVICE_INIT_REPORTED"), poisonVal: 0xaaaaaaaa });
    h.paint(PFN_BASE, 2, 0x77);
    h.send("reporting", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE), 0xaa)).toBe(true);
    expect(h.mq("reporting").used()[0]!.len).toBe(2 * PAGE);
  });

  it("poison_val that is not a repeated byte: pages untouched, used length 0 even with bit 6", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "PAGE_POISON", "DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE"), poisonVal: 0x12345678 });
    expect(h.kinds()).toEqual(["poison-val-not-byte-pattern", "poison-val-not-byte-pattern"]);
    h.paint(PFN_BASE, 4, 0x77);
    h.send("reporting", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE), 0x77)).toBe(true);
    expect(h.mq("reporting").used()[0]!.len).toBe(0);
    // Inflate: nothing filled, no bit set, but the pages are tracked.
    const c = h.send("inflate", [{ data: le32([PFN_BASE + 2, PFN_BASE + 3]) }, { len: 1, write: true, fill: 0xee }]);
    expect(h.mq("inflate").used()[0]!.len).toBe(1);
    expect(h.mq("inflate").read(c.buffers[1]!.addr, 1)[0]).toBe(0);
    expect(allBytes(h.page(PFN_BASE + 2), 0x77)).toBe(true);
    expect(h.dev.inflatedPages).toBe(2);
  });

  it("bit 6: the used length is the prefix of ranges filled (a range the hot path refuses ends it)", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED") });
    const real = h.hot.fillRange.bind(h.hot);
    let calls = 0;
    h.hot.fillRange = (a, l, f) => (++calls === 2 ? false : real(a, l, f));
    h.send("reporting", [range(PFN_BASE, 1), range(PFN_BASE + 2, 1), range(PFN_BASE + 4, 1)]);
    expect(h.mq("reporting").used()[0]!.len).toBe(PAGE);
  });
});

describe("free page hinting", () => {
  it("runs two cycles: new command IDs, hints handled only while started, DONE releases", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT") });
    const ev: HintEvent[] = [];
    h.host.on("hint", (e) => ev.push(e));
    const cmd = (id: number) => h.send("free-page", [{ data: le32([id]) }]);

    // Before any cycle: config shows DONE; hints are ignored (and diagnosed).
    expect(h.dev.readConfig(8, 4)).toBe(1);
    h.paint(PFN_BASE, 64, 0x77);
    h.send("free-page", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE), 0x77)).toBe(true);
    expect(h.kinds()).toEqual(["hint-pages-ignored"]);

    // Cycle 1.
    const c0 = h.transport.configInterrupts;
    expect(h.host.startHinting()).toBe(2);
    expect(h.transport.configInterrupts).toBe(c0 + 1);
    expect(h.dev.readConfig(8, 4)).toBe(2);
    expect(h.host.hinting.status).toBe("requested");
    cmd(2);
    expect(h.host.hinting.status).toBe("started");
    h.send("free-page", [range(PFN_BASE, 2), range(PFN_BASE + 4, 1)]);
    for (const p of [0, 1, 4]) expect(allBytes(h.page(PFN_BASE + p), 0)).toBe(true);
    expect(allBytes(h.page(PFN_BASE + 2), 0x77)).toBe(true);
    cmd(0); // the driver ran out of pages: STOP -> autoDone shows DONE
    expect(h.host.hinting.status).toBe("done");
    expect(h.dev.readConfig(8, 4)).toBe(1);
    expect(h.transport.configInterrupts).toBe(c0 + 2);
    const used = h.mq("free-page").used();
    expect(used.every((u) => u.len === 0)).toBe(true);
    expect(used).toHaveLength(4);

    // Cycle 2: a stale ID is refused and its hints ignored; the current one works; host stops.
    expect(h.host.startHinting()).toBe(3);
    cmd(2);
    expect(h.kinds()).toContain("hint-cmd-id-mismatch");
    h.send("free-page", [range(PFN_BASE + 10, 1)]);
    expect(allBytes(h.page(PFN_BASE + 10), 0x77)).toBe(true);
    cmd(3);
    h.send("free-page", [range(PFN_BASE + 12, 2)]);
    expect(allBytes(h.page(PFN_BASE + 13), 0)).toBe(true);
    h.host.stopHinting({ release: false });
    expect(h.dev.readConfig(8, 4)).toBe(0);
    h.send("free-page", [range(PFN_BASE + 20, 1)]); // in flight after STOP: ignored silently
    expect(allBytes(h.page(PFN_BASE + 20), 0x77)).toBe(true);
    h.host.finishHinting();
    expect(h.dev.readConfig(8, 4)).toBe(1);

    expect(h.dev.counters()).toMatchObject({ pagesHinted: 5, hintCycles: 2, requests: { hint: 9 } });
    expect(ev.map((e) => `${e.cycle}:${e.phase}`)).toEqual([
      "0:ignored", "1:requested", "1:started", "1:pages", "1:driver-stopped", "1:done",
      "2:requested", "2:ignored", "2:started", "2:pages", "2:stopped", "2:ignored", "2:done",
    ]);
    expect(ev.at(-1)).toMatchObject({ cmdId: 3, totalPages: 2 });
    expect(h.mem.guardsIntact()).toBe(true);
  });

  it("with PAGE_POISON hinted pages get poison_val's byte (never zero)", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT", "PAGE_POISON"), poisonVal: 0xaaaaaaaa, zeroFreedPages: false });
    h.paint(PFN_BASE, 2, 0x77);
    h.host.startHinting();
    h.send("free-page", [{ data: le32([2]) }]);
    h.send("free-page", [range(PFN_BASE, 2)]);
    expect(allBytes(h.page(PFN_BASE), 0xaa)).toBe(true);
  });

  it("host stopHinting() defaults to STOP then DONE; startHinting without the feature returns null", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT"), hintAutoDone: false });
    h.host.startHinting();
    h.send("free-page", [{ data: le32([2]) }]);
    h.send("free-page", [{ data: le32([0]) }]);
    expect(h.host.hinting.status).toBe("driver-stopped");
    expect(h.dev.readConfig(8, 4)).toBe(2);
    h.host.stopHinting();
    expect(h.host.hinting.status).toBe("done");
    expect(h.dev.readConfig(8, 4)).toBe(1);
    const none = await makeBalloon({ accept: bits() });
    expect(none.host.startHinting()).toBeNull();
  });

  it("command IDs wrap from 0xffffffff back to 2", async () => {
    const h = await makeBalloon({ accept: bits("FREE_PAGE_HINT") });
    const s = h.dev.saveState();
    s.hinting.cmdId = 0xffffffff;
    h.dev.restoreState(s, h.vqs);
    expect(h.host.startHinting()).toBe(2);
  });
});

import { describe, expect, it } from "vitest";
import { BalloonDevice } from "../src/balloon/device.js";
import { stateFromJSON, stateToJSON } from "../src/balloon/persist.js";
import { StateError } from "../src/virtio/state.js";
import { allBytes, bits, le32, makeBalloon, PAGE, PFN_BASE, RAM_PAGES, statsBuf } from "./balloon-harness.js";

describe("balloon host API", () => {
  it("setTarget / setTargetBytes write num_pages, emit, and interrupt only when live", async () => {
    const h = await makeBalloon({ accept: bits(), noActivate: true });
    const seen: Array<[number, number]> = [];
    h.host.on("target", (e) => seen.push([e.pages, e.bytes]));
    expect(h.host.setTarget(10)).toBe(10);
    expect(h.transport.configInterrupts).toBe(0);
    h.dev.activate(h.accepted, h.vqs);
    expect(h.host.setTargetBytes(64 * PAGE + 2047)).toBe(64);
    expect(h.host.setTargetBytes(64 * PAGE + 2048)).toBe(65);
    expect(h.transport.configInterrupts).toBe(2);
    expect(h.host.target).toBe(65);
    expect(h.dev.readConfig(0, 4)).toBe(65);
    expect(seen).toEqual([[10, 10 * PAGE], [64, 64 * PAGE], [65, 65 * PAGE]]);
    expect(h.host.ramPages).toBe(RAM_PAGES);
  });

  it("counters, features and off()", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ", "DEVICE_INIT_ON_INFLATE") });
    expect(h.host.features.negotiatedNames).toEqual(["STATS_VQ", "DEVICE_INIT_ON_INFLATE", "VERSION_1"]);
    expect(h.host.features.offeredNames).toHaveLength(9);
    let n = 0;
    const fn = () => n++;
    h.host.on("inflate", fn);
    h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }, { len: 1, write: true }]);
    h.host.off("inflate", fn);
    h.send("inflate", [{ data: le32([PFN_BASE + 2]) }, { len: 1, write: true }]);
    expect(n).toBe(1);
    h.send("deflate", [{ data: le32([PFN_BASE]) }]);
    h.send("stats", [{ data: statsBuf([[4, 1]]) }]);
    expect(h.host.counters()).toEqual({
      pagesInflated: 3, pagesDeflated: 1, pagesReported: 0, pagesHinted: 0,
      bytesZeroed: 3 * PAGE, bytesPoisoned: 0, bitmapsWritten: 2,
      requests: { inflate: 2, deflate: 1, report: 0, hint: 0, stats: 1 },
      hintCycles: 0, statsSamples: 1, diagnostics: 0, diagnosticsByKind: {}, inflatedPages: 2, faults: {}, notifyWork: expect.objectContaining({ deferred: 0 }),
    });
    expect(h.host.inflatedPages).toBe(2);
    expect(h.host.live).toBe(true);
  });

  it("reset drops the balloon (tracking, actual, queues) and emits", async () => {
    const h = await makeBalloon({ accept: bits() });
    h.host.setTarget(5);
    h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
    h.dev.writeConfig(4, 4, 2);
    const resets: number[] = [];
    h.host.on("reset", (e) => resets.push(e.inflatedPagesDropped));
    h.dev.reset();
    expect(resets).toEqual([2]);
    expect(h.host.live).toBe(false);
    expect(h.host.actual).toBe(0);
    expect(h.host.target).toBe(5);
    expect(h.host.inflatedPages).toBe(0);
    expect(h.host.features.negotiated).toBe(0n);
  });
});

describe("balloon persistence", () => {
  it("round-trips through JSON into a fresh device on the same memory", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ", "FREE_PAGE_HINT", "PAGE_POISON", "DEVICE_INIT_ON_INFLATE"), poisonVal: 0 });
    h.host.setTarget(100);
    h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE + 7, PFN_BASE + 300]) }, { len: 1, write: true }]);
    h.dev.writeConfig(4, 4, 3);
    h.host.setStatsInterval(5);
    const held = h.send("stats", [{ data: statsBuf([[4, 42]]) }]);
    h.host.startHinting();
    h.send("free-page", [{ data: le32([2]) }]);
    h.dev.writeConfig(0, 4, 1); // one diagnostic, to be counted

    const saved = h.dev.saveState();
    const json = JSON.parse(JSON.stringify(stateToJSON(saved))) as unknown;
    const fresh = new BalloonDevice(h.mem, h.hot, { clock: h.clock });
    fresh.attach(h.transport);
    fresh.restoreState(stateFromJSON(json), h.vqs);
    expect(fresh.saveState()).toEqual(saved);

    expect(fresh.target).toBe(100);
    expect(fresh.actual).toBe(3);
    expect(fresh.poisonValue).toBe(0);
    expect(fresh.readConfig(8, 4)).toBe(2);
    expect(fresh.hintingState.status).toBe("started");
    expect(fresh.inflatedPages).toBe(3);
    expect(fresh.isInflated(PFN_BASE + 300)).toBe(true);
    expect(fresh.statsIntervalSeconds).toBe(5);
    expect(fresh.latestStats!.values.MEMFREE).toBe(42);
    expect(fresh.counters().diagnostics).toBe(1);
    expect(fresh.live).toBe(true);

    // The restored device continues: deflating restored pages is clean, the held stats buffer is returned.
    const diags: string[] = [];
    fresh.on("diagnostic", (d) => diags.push(d.kind));
    h.mq("deflate").addChain([{ data: le32([PFN_BASE, PFN_BASE + 7]) }]);
    fresh.notify(h.index("deflate"));
    expect(diags).toEqual([]);
    expect(fresh.inflatedPages).toBe(1);
    void fresh.requestStats(0);
    expect(h.mq("stats").used()).toEqual([expect.objectContaining({ id: held.head, len: 0 })]);
    fresh.dispose();
    h.dev.dispose();
  });

  it("refuses malformed states with a StateError naming the field and changes nothing", async () => {
    const h = await makeBalloon({ accept: bits() });
    h.host.setTarget(7);
    const good = h.dev.saveState();
    const bad = [
      null, 42, { ...good, version: 99 }, { ...good, offered: "x" },
      { ...good, config: { ...good.config, numPages: RAM_PAGES + 1 } },
      { ...good, config: { ...good.config, actual: -1 } },
      { ...good, hinting: { ...good.hinting, status: "weird" } },
      { ...good, stats: { ...good.stats, heldHead: 1e6 } },
      { ...good, inflatedBitmap: new Uint8Array(3) },
      { ...good, counters: { ...good.counters, pagesInflated: "many" } },
      { ...good, offered: "1" },
    ];
    for (const s of bad) expect(() => h.dev.restoreState(s, h.vqs)).toThrow(StateError);
    expect(() => h.dev.restoreState({ ...good, config: { ...good.config, actual: -1 } }, h.vqs)).toThrow(/device\.config\.actual/);
    expect(h.dev.target).toBe(7);
    expect(h.dev.live).toBe(true);
  });
});

/** The device's "fault" events from now on, as "fault:action". */
function faultActs(h: { dev: { on(e: "fault", f: (e: { fault: string; action: string }) => void): unknown } }): string[] {
  const acts: string[] = [];
  h.dev.on("fault", (e) => acts.push(`${e.fault}:${e.action}`));
  return acts;
}

describe("balloon fault injection (off by default)", () => {
  it("lieAboutInit, bit 7: bitmap bits set, pages untouched", async () => {
    const h = await makeBalloon({ accept: bits("DEVICE_INIT_ON_INFLATE"), faults: { lieAboutInit: true } });
    const acts = faultActs(h);
    const c = h.send("inflate", [{ data: le32([PFN_BASE, RAM_PAGES, PFN_BASE + 1]) }, { len: 1, write: true }]);
    expect(h.mq("inflate").used()[0]!.len).toBe(1);
    expect(h.mq("inflate").read(c.buffers[1]!.addr, 1)[0]).toBe(0b101);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
    expect(allBytes(h.page(PFN_BASE + 1), 0x5a)).toBe(true);
    expect(h.dev.counters().bytesZeroed).toBe(0);
    expect(h.dev.inflatedPages).toBe(2);
    expect(acts).toEqual(["lieAboutInit:inflate-claimed-unfilled"]);
  });

  it("lieAboutInit, bit 6: used length claims everything, pages untouched", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED"), faults: { lieAboutInit: true } });
    const acts = faultActs(h);
    h.send("reporting", [{ addr: PFN_BASE * PAGE, len: 2 * PAGE, write: true }]);
    expect(h.mq("reporting").used()[0]!.len).toBe(2 * PAGE);
    expect(allBytes(h.page(PFN_BASE), 0x5a)).toBe(true);
    expect(acts).toEqual(["lieAboutInit:report-claimed-unfilled"]);
  });

  it("setPaddingBits: the padding bits of the last bitmap byte are set", async () => {
    const h = await makeBalloon({ accept: bits("DEVICE_INIT_ON_INFLATE"), faults: { setPaddingBits: true } });
    const acts = faultActs(h);
    const pfns = Array.from({ length: 9 }, (_, i) => PFN_BASE + i);
    const c = h.send("inflate", [{ data: le32(pfns) }, { len: 2, write: true }]);
    expect([...h.mq("inflate").read(c.buffers[1]!.addr, 2)]).toEqual([0xff, 0xff]);
    expect(allBytes(h.page(PFN_BASE), 0)).toBe(true);
    expect(acts).toEqual(["setPaddingBits:bitmap-padding-set"]);
  });

  it("shortReportUsedLength: used length one page short of what was initialised", async () => {
    const h = await makeBalloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED"), faults: { shortReportUsedLength: true } });
    const acts = faultActs(h);
    h.send("reporting", [{ addr: PFN_BASE * PAGE, len: 3 * PAGE, write: true }]);
    expect(h.mq("reporting").used()[0]!.len).toBe(2 * PAGE);
    expect(allBytes(h.page(PFN_BASE + 2), 0)).toBe(true);
    expect(acts).toEqual(["shortReportUsedLength:used-length-shortened"]);
  });
});

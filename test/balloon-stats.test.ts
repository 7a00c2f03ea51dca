import { describe, expect, it } from "vitest";
import { STATS_TAGS, type StatsSample } from "../src/balloon/stats.js";
import { bits, makeBalloon, statsBuf } from "./balloon-harness.js";

const ALL = STATS_TAGS.map((_, tag) => [tag, 1000 + tag] as const);

describe("stats queue", () => {
  it("parses all 16 Linux tags, timestamps the sample and holds the buffer", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const got: StatsSample[] = [];
    h.host.on("stats", (s) => got.push(s));
    h.clock.t = 5_000_000;
    h.send("stats", [{ data: statsBuf([...ALL, [99, 7], [4, 8192 * 4096]]) }]);
    expect(h.mq("stats").used()).toEqual([]); // held
    expect(got).toHaveLength(1);
    const s = got[0]!;
    expect(s.time).toBe(5_000_000);
    expect(Object.keys(s.values)).toEqual([...STATS_TAGS]);
    expect(s.values.SWAP_IN).toBe(1000);
    expect(s.values.DIRECT_RECLAIM).toBe(1015);
    expect(s.values.MEMFREE).toBe(8192 * 4096); // last entry for a tag wins
    expect(s.freePages).toBe(8192);
    expect(s.entries.find((e) => e.tag === 99)).toEqual({ tag: 99, name: null, value: 7 });
    expect(h.host.stats()).toBe(s);
    expect(h.diags).toEqual([]);
    expect(h.dev.counters()).toMatchObject({ statsSamples: 1, requests: { stats: 1 } });
  });

  it("polls on the host's interval: the held buffer comes back used (len 0) with an interrupt", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    h.host.setStatsInterval(2);
    expect(h.host.statsInterval).toBe(2);
    h.send("stats", [{ data: statsBuf(ALL) }]);
    h.clock.advance(1999);
    expect(h.mq("stats").used()).toEqual([]);
    h.transport.queueInterrupts.length = 0;
    h.clock.advance(1);
    expect(h.mq("stats").used()).toEqual([expect.objectContaining({ len: 0 })]);
    expect(h.transport.queueInterrupts).toEqual([h.index("stats")]);
    // No buffer held: a tick does nothing.
    h.clock.advance(2000);
    expect(h.mq("stats").used()).toEqual([]);
    h.host.setStatsInterval(0);
    expect(h.clock.pendingTimers).toBe(0);
  });

  it("requestStats() releases the buffer and resolves with the driver's next sample", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    h.send("stats", [{ data: statsBuf([[4, 1], [5, 2]]) }]);
    const p = h.host.requestStats();
    expect(h.mq("stats").used()).toHaveLength(1);
    h.clock.t += 10;
    h.send("stats", [{ data: statsBuf([[4, 3], [5, 4]]) }]);
    const s = await p;
    expect(s.values).toEqual({ MEMFREE: 3, MEMTOT: 4 });
    expect(s.time).toBe(h.clock.now());
  });

  it("requestStats() times out, and rejects when the queue is not live", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const p = h.host.requestStats(100);
    h.clock.advance(100);
    await expect(p).rejects.toThrow(/within 100 ms/);
    const none = await makeBalloon({ accept: bits() });
    await expect(none.host.requestStats()).rejects.toThrow(/not live/);
    const r = h.host.requestStats(0);
    h.dev.reset();
    await expect(r).rejects.toThrow(/reset/);
  });

  it("a buffer whose length is not a multiple of 10 is diagnosed; whole entries are used", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const b = statsBuf([[4, 77]]);
    h.send("stats", [{ data: [...b, 1, 2, 3] }]);
    expect(h.kinds()).toEqual(["stats-buffer-misaligned"]);
    expect(h.host.stats()!.values).toEqual({ MEMFREE: 77 });
    expect(h.mem.guardsIntact()).toBe(true);
  });

  it("a second buffer while one is held is diagnosed; the older one is returned", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const a = h.send("stats", [{ data: statsBuf([[4, 1]]) }]);
    h.send("stats", [{ data: statsBuf([[4, 2]]) }]);
    expect(h.kinds()).toEqual(["stats-extra-buffer"]);
    expect(h.mq("stats").used()).toEqual([expect.objectContaining({ id: a.head, len: 0 })]);
    expect(h.host.stats()!.values.MEMFREE).toBe(2);
  });
});

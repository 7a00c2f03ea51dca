import { describe, expect, it } from "vitest";
import type { FaultEvent } from "../src/balloon/events.js";
import { featureBit } from "../src/balloon/features.js";
import { faultByName, faultObject } from "../src/harness/descriptor.js";
import { allBytes, bits, le32, makeBalloon, PFN_BASE, RAM_PAGES, type HarnessOptions } from "./balloon-harness.js";

async function faulty(opts: HarnessOptions) {
  const h = await makeBalloon({ accept: bits(), ...opts });
  const faults: FaultEvent[] = [];
  h.dev.on("fault", (e) => faults.push(e));
  return { h, faults, actions: () => faults.map((e) => `${e.fault}:${e.action}`) };
}

describe("run-time faults, all off", () => {
  it("answer at once, interrupt, clamp the target, and never act", async () => {
    const { h, faults } = await faulty({});
    h.send("inflate", [{ data: le32([PFN_BASE]) }]);
    expect(h.mq("inflate").used()).toHaveLength(1);
    expect(h.transport.queueInterrupts).toEqual([0]);
    expect(h.dev.readConfig(0, 4)).toBe(0);
    expect(h.host.setTarget(RAM_PAGES + 1)).toBe(RAM_PAGES);
    h.clock.advance(60_000);
    expect(h.transport.configInterrupts).toBe(1);
    expect(h.transport.resets).toEqual([]);
    expect(faults).toEqual([]);
    expect(h.dev.counters().faults).toEqual({});
  });
});

describe("delayUsedMs", () => {
  it("processes at once but writes the used element and interrupts only after the delay", async () => {
    const { h, actions } = await faulty({ faults: { delayUsedMs: 200 } });
    h.send("inflate", [{ data: le32([PFN_BASE, PFN_BASE + 1]) }]);
    expect(h.dev.inflatedPages).toBe(2);
    expect(allBytes(h.page(PFN_BASE), 0)).toBe(true);
    h.clock.advance(199);
    expect(h.mq("inflate").used()).toEqual([]);
    expect(h.transport.queueInterrupts).toEqual([]);
    h.clock.advance(1);
    expect(h.mq("inflate").used()).toHaveLength(1);
    expect(h.transport.queueInterrupts).toEqual([0]);
    expect(actions()).toEqual(["delayUsedMs:used-held"]);
  });

  it("a device reset discards held buffers (their queue is gone)", async () => {
    const { h, actions } = await faulty({ faults: { delayUsedMs: 50 } });
    h.send("deflate", [{ data: le32([PFN_BASE]) }]);
    h.dev.reset();
    h.clock.advance(100);
    expect(h.mq("deflate").used()).toEqual([]);
    expect(h.transport.queueInterrupts).toEqual([]);
    expect(actions()).toEqual(["delayUsedMs:used-held", "delayUsedMs:held-used-discarded"]);
  });
});

describe("dropUsedEvery", () => {
  it("drops every Nth inflate and deflate chain, counted per queue, after processing it", async () => {
    const { h, faults } = await faulty({ faults: { dropUsedEvery: 3 } });
    const heads = Array.from({ length: 6 }, (_, i) => h.send("inflate", [{ data: le32([PFN_BASE + i]) }]).head);
    expect(h.mq("inflate").used().map((u) => u.id)).toEqual([heads[0], heads[1], heads[3], heads[4]]);
    expect(h.dev.inflatedPages).toBe(6);
    h.send("deflate", [{ data: le32([PFN_BASE]) }]);
    h.send("deflate", [{ data: le32([PFN_BASE + 1]) }]);
    expect(h.mq("deflate").used()).toHaveLength(2);
    expect(h.dev.inflatedPages).toBe(4);
    expect(faults.map((e) => [e.queue, e.detail.head])).toEqual([[0, heads[2]], [0, heads[5]]]);
    expect(h.dev.counters().faults).toEqual({ dropUsedEvery: 2 });
  });

  it("leaves the other queues alone", async () => {
    const { h } = await faulty({ accept: bits("PAGE_REPORTING"), faults: { dropUsedEvery: 1 } });
    h.send("reporting", [{ addr: PFN_BASE * 4096, len: 4096, write: true }]);
    expect(h.mq("reporting").used()).toHaveLength(1);
  });
});

describe("withholdInterrupts", () => {
  it("writes the used ring but raises no queue interrupt; config interrupts still go", async () => {
    const { h, actions } = await faulty({ faults: { withholdInterrupts: true } });
    h.send("inflate", [{ data: le32([PFN_BASE]) }]);
    expect(h.mq("inflate").used()).toHaveLength(1);
    expect(h.transport.queueInterrupts).toEqual([]);
    h.host.setTarget(5);
    expect(h.transport.configInterrupts).toBe(1);
    expect(actions()).toEqual(["withholdInterrupts:interrupt-withheld"]);
  });
});

describe("hugeNumPages", () => {
  it("shows 0xFFFFFFFF from the start and takes host targets unclamped", async () => {
    const { h, faults } = await faulty({ noActivate: true, faults: { hugeNumPages: true } });
    expect(h.dev.readConfig(0, 4)).toBe(0xffffffff);
    h.dev.activate(h.accepted, h.vqs);
    expect(faults.map((e) => e.detail.numPages)).toEqual([0xffffffff]);
    expect(h.host.setTarget(4 * RAM_PAGES)).toBe(4 * RAM_PAGES);
    expect(h.dev.readConfig(0, 4)).toBe(4 * RAM_PAGES);
    expect(h.host.setTarget(2 ** 40)).toBe(0xffffffff);
    expect(h.host.setTarget(10)).toBe(10);
    expect(h.kinds()).not.toContain("target-above-ram");
    expect(h.dev.counters().faults).toEqual({ hugeNumPages: 3 });
  });
});

describe("configStorm", () => {
  it("fires COUNT config interrupts, one per interval, after DRIVER_OK and after every target change", async () => {
    const { h, actions } = await faulty({ faults: { configStorm: { count: 5, intervalMs: 10 } } });
    h.clock.advance(25);
    expect(h.transport.configInterrupts).toBe(2);
    h.clock.advance(1000);
    expect(h.transport.configInterrupts).toBe(5);
    h.host.setTarget(7);
    h.clock.advance(1000);
    expect(h.transport.configInterrupts).toBe(11);
    expect(h.dev.readConfig(0, 4)).toBe(7);
    expect(actions()).toEqual(["configStorm:storm-started"]); // the DRIVER_OK one came before we listened
    expect(h.dev.counters().faults).toEqual({ configStorm: 2 });
    expect(h.clock.pendingTimers).toBe(0);
  });

  it("with toggle, num_pages flips between the previous and the new target and ends on the new one", async () => {
    const { h } = await faulty({ faults: { configStorm: { count: 4, intervalMs: 10, toggle: true } } });
    h.clock.advance(1000);
    const shown: number[] = [];
    h.transport.interruptConfig = () => shown.push(h.dev.readConfig(0, 4));
    h.host.setTarget(100);
    h.clock.advance(1000);
    expect(shown).toEqual([100, 0, 100, 0, 100]);
  });

  it("a device reset ends the storm", async () => {
    const { h } = await faulty({ faults: { configStorm: { count: 100, intervalMs: 10 } } });
    h.clock.advance(30);
    h.dev.reset();
    h.clock.advance(1000);
    expect(h.transport.configInterrupts).toBe(3);
    expect(h.clock.pendingTimers).toBe(0);
  });
});

describe("resetMidInflate", () => {
  it("the first inflate request sets DEVICE_NEEDS_RESET instead of completing; later ones complete", async () => {
    const { h, actions } = await faulty({ faults: { resetMidInflate: true } });
    const first = h.send("inflate", [{ data: le32([PFN_BASE]) }]);
    expect(h.transport.resets).toEqual([`fault resetMidInflate: inflate request (head ${first.head}) not completed`]);
    expect(h.mq("inflate").used()).toEqual([]);
    expect(h.dev.inflatedPages).toBe(0);
    h.send("inflate", [{ data: le32([PFN_BASE]) }]);
    expect(h.mq("inflate").used()).toHaveLength(1);
    expect(h.transport.resets).toHaveLength(1);
    expect(actions()).toEqual(["resetMidInflate:needs-reset"]);
  });
});

describe("offerUnchecked", () => {
  const features = { PAGE_REPORTING: false, DEVICE_INIT_REPORTED: true };
  const bit6 = featureBit("DEVICE_INIT_REPORTED");
  const both = bit6 | featureBit("PAGE_REPORTING");

  it("offers bit 6 without bit 5 (no offer-dependency warning: it is offered) and names it at FEATURES_OK", async () => {
    const { h } = await faulty({ accept: bits(), features, faults: { offerUnchecked: true } });
    expect(h.dev.offeredFeatures() & both).toBe(bit6);
    expect(h.refusal).toBeNull(); // a driver that drops bit 6 is accepted
    expect(h.dev.counters().diagnosticsByKind).toEqual({});
    expect(h.dev.counters().faults).toEqual({ offerUnchecked: 1 });
  });

  it("still refuses FEATURES_OK from a driver that accepts the bit it should have dropped", async () => {
    const { h } = await faulty({ accept: bits("DEVICE_INIT_REPORTED"), features, faults: { offerUnchecked: true } });
    expect(h.refusal).toMatch(/init-reported-requires-reporting/);
  });

  it("without the fault the same options offer neither dependent bit", async () => {
    const { h } = await faulty({ accept: bits(), features });
    expect(h.dev.offeredFeatures() & both).toBe(0n);
    expect(h.dev.counters().faults).toEqual({});
  });
});

describe("harness fault names", () => {
  it("maps kebab names and values to BalloonFaults", () => {
    const names = ["delay-used=250", "drop-used-every=3", "withhold-interrupts", "huge-num-pages", "config-storm=50@20+toggle", "reset-mid-inflate"].map(faultByName);
    expect(names).toEqual(["delayUsedMs=250", "dropUsedEvery=3", "withholdInterrupts", "hugeNumPages", "configStorm=50@20+toggle", "resetMidInflate"]);
    expect(faultObject(names)).toEqual({
      delayUsedMs: 250, dropUsedEvery: 3, withholdInterrupts: true, hugeNumPages: true,
      configStorm: { count: 50, intervalMs: 20, toggle: true }, resetMidInflate: true,
    });
    expect(faultByName("config-storm")).toBe("configStorm=200@10");
    expect(faultByName("delay-used-ms=1s")).toBe("delayUsedMs=1s");
    expect(faultObject(["delayUsedMs=1s"])).toEqual({ delayUsedMs: 1000 });
    expect(() => faultByName("drop-used=0")).toThrow(/drop-used-every=N/);
    expect(() => faultByName("huge-num-pages=1")).toThrow(/takes no value/);
    expect(() => faultByName("config-storm=lots")).toThrow(/COUNT@MS/);
  });
});

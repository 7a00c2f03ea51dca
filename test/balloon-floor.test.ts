import { describe, expect, it } from "vitest";
import { BalloonHost, parseFloor } from "../src/host/balloon-host.js";
import { targetLimit } from "../src/host/floor.js";
import type { StatsSample } from "../src/balloon/stats.js";
import { bits, makeBalloon, PAGE, RAM, RAM_PAGES, statsBuf } from "./balloon-harness.js";

const MiB = 1 << 20;
// Stats tags: MEMFREE 4, MEMTOT 5, AVAIL 6.
const AVAIL = 6;

describe("host floor: the balloon always leaves the guest enough memory", () => {
  it("without statistics the default leaves max(48 MiB, RAM/4) to the guest and says so", async () => {
    // A 256 MiB machine: the harness's RAM is small, so use the device with a bigger memory view.
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const host = new BalloonHost(h.dev);
    expect(host.floor).toBe("auto");
    const lim = host.limit();
    expect(lim.source).toBe("ram-fraction");
    // 16 MiB of RAM: 48 MiB reserve leaves nothing to inflate.
    expect(RAM).toBeLessThan(48 * MiB);
    expect(lim.maxPages).toBe(0);
    expect(host.setTarget(100)).toBe(0);
    expect(host.lastClamp).toMatchObject({ requested: 100, pages: 0 });
    expect(host.lastClamp!.limit.reason).toMatch(/no memory statistics/);
  });

  it("with a stats sample the limit is balloon + MemAvailable − margin, and setTarget holds it", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const host = new BalloonHost(h.dev);
    h.send("stats", [{ data: statsBuf([[AVAIL, 12 * MiB]]) }]);
    const lim = host.limit();
    expect(lim.source).toBe("stats");
    // margin = max(16 MiB, RAM/16) = 16 MiB > 12 MiB available: nothing may be inflated.
    expect(lim.maxPages).toBe(0);
    h.send("stats", [{ data: statsBuf([[AVAIL, 15 * MiB]]) }]);
    expect(host.limit().maxPages).toBe(0);
    expect(host.setTargetBytes(8 * MiB)).toBe(0);
    expect(host.lastClamp!.limit.reason).toMatch(/MemAvailable 15 MiB/);
  });

  it("the stats limit counts the balloon already inflated when the sample arrived", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const host = new BalloonHost(h.dev, { floor: 4 * MiB });
    expect(host.limit()).toMatchObject({ source: "fixed", maxPages: RAM_PAGES - (4 * MiB) / PAGE });
    host.floor = "auto";
    h.dev.writeConfig(4, 4, 1024); // the driver says 4 MiB are in the balloon
    h.send("stats", [{ data: statsBuf([[AVAIL, 0]]) }]);
    // 4 MiB (balloon) + 0 available − 16 MiB margin: below zero, clamped to 0.
    expect(host.limit().maxPages).toBe(0);
  });

  it("a fixed floor, 'off', and bad options", async () => {
    const h = await makeBalloon({ accept: bits("STATS_VQ") });
    const host = new BalloonHost(h.dev, { floor: 8 * MiB });
    expect(host.setTarget(RAM_PAGES)).toBe(RAM_PAGES - (8 * MiB) / PAGE);
    expect(host.lastClamp!.limit.reason).toMatch(/at least 8 MiB/);
    expect(host.setTarget(10)).toBe(10);
    expect(host.lastClamp).toBeNull();
    host.floor = "off";
    expect(host.setTarget(RAM_PAGES)).toBe(RAM_PAGES);
    expect(() => new BalloonHost(h.dev, { floor: -1 })).toThrow(/floor must be/);
    expect(parseFloor("64M")).toBe(64 * MiB);
    expect(parseFloor("64")).toBe(64 * MiB); // text is MiB, like the memory option
    expect(parseFloor("auto")).toBe("auto");
    expect(parseFloor("off")).toBe("off");
    expect(() => parseFloor("lots")).toThrow(/not "auto", "off" or a size/);
  });

  it("on a 256 MiB guest: 192 MiB before stats; balloon + MemAvailable − 16 MiB after", () => {
    const ram = (256 * MiB) / PAGE;
    expect(targetLimit("auto", ram, null)).toMatchObject({ maxPages: (192 * MiB) / PAGE, reservePages: (64 * MiB) / PAGE });
    const sample = { time: 0, values: {}, entries: [], availablePages: (200 * MiB) / PAGE } as StatsSample;
    expect(targetLimit("auto", ram, { sample, actual: (20 * MiB) / PAGE }).maxPages).toBe((204 * MiB) / PAGE);
    // Never more than RAM, whatever the guest claims.
    const liar = { ...sample, availablePages: 10 * ram };
    expect(targetLimit("auto", ram, { sample: liar, actual: 0 }).maxPages).toBe(ram);
  });
});

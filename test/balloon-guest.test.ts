// The real Linux virtio_balloon driver against our device, in v86 under Node.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeBalloonVM, type BalloonVM } from "../src/node/balloon-vm-node.js";
import type { BalloonDiagnostic } from "../src/balloon/diagnostics.js";
import { until } from "../src/until.js";
import { editBalloonJson } from "./support/v86-state.js";
import { checkBalloonSnapshot, StateError } from "../src/host/snapshot.js";

const MiB = 256; // pages per MiB

function meminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]] = Number(m[2]);
  return out;
}

/** Guest-side features as the driver sees them: the bit string in sysfs. */
async function guestFeatureBits(b: BalloonVM): Promise<number[]> {
  const bits = (await b.vm.run("cat /sys/bus/virtio/devices/virtio0/features")).trim();
  return [...bits].flatMap((c, i) => (c === "1" ? [i] : []));
}

async function settle(b: BalloonVM, pages: number, timeoutMs = 60000): Promise<void> {
  b.host.setTarget(pages);
  await until(() => b.host.actual === pages, `actual to reach ${pages} pages (now ${b.host.actual})`, timeoutMs);
}

/** Every page the device holds in the balloon, read from the host side, is all zero. */
function inflatedPagesAreZero(b: BalloonVM): { pages: number; nonZero: number } {
  const bitmap = b.device.saveState().inflatedBitmap;
  const ram = b.adapter.memory.bytes();
  let pages = 0;
  let nonZero = 0;
  for (let pfn = 0; pfn < bitmap.length * 8; pfn++) {
    if (!((bitmap[pfn >> 3] >> (pfn & 7)) & 1)) continue;
    pages++;
    const page = ram.subarray(pfn * 4096, pfn * 4096 + 4096);
    if (page.some((x) => x !== 0)) nonZero++;
  }
  return { pages, nonZero };
}

describe("Linux driver, DEFLATE_ON_OOM off (MemTotal moves)", () => {
  let b: BalloonVM;
  const diags: BalloonDiagnostic[] = [];
  beforeAll(async () => {
    // 256 MiB: Linux reports free pages only while free memory exceeds the low watermark plus
    // 32 x 4 MiB (PAGE_REPORTING_CAPACITY << pageblock_order), which a 128 MiB guest never has.
    // Subscribed from attach: feature negotiation and Linux's probe are checked too.
    b = await startNodeBalloonVM({
      memoryMiB: 256, balloon: { features: { DEFLATE_ON_OOM: false } },
      onAttached: (a) => a.host.on("diagnostic", (d) => diags.push(d)),
    });
  });
  afterAll(async () => b?.vm.destroy());

  it("binds and negotiates every offered feature the (patched) driver knows", async () => {
    expect(await b.vm.run("ls /sys/bus/virtio/drivers/virtio_balloon")).toMatch(/virtio0/);
    const bits = await guestFeatureBits(b);
    // PAGE_POISON only with poisoning on; DEFLATE_ON_OOM not offered here.
    expect(bits).toEqual([0, 1, 3, 5, 6, 7, 32]);
    expect(b.host.features.negotiatedNames).toEqual([
      "MUST_TELL_HOST", "STATS_VQ", "FREE_PAGE_HINT", "PAGE_REPORTING",
      "DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE", "VERSION_1",
    ]);
  });

  it("inflates: MemTotal drops by the target and inflated pages read as zero from the host", async () => {
    // Dirty 48 MiB of guest memory first, so zeros in the balloon are the device's doing.
    await b.vm.run("memtouch 48");
    const before = meminfo(await b.vm.run("cat /proc/meminfo"));
    await settle(b, 32 * MiB);
    const after = meminfo(await b.vm.run("cat /proc/meminfo"));
    expect(before.MemTotal - after.MemTotal).toBe(32 * 1024);
    const { pages, nonZero } = inflatedPagesAreZero(b);
    expect(pages).toBe(32 * MiB);
    expect(nonZero).toBe(0);
    expect(b.host.counters().bytesZeroed).toBeGreaterThanOrEqual(32 << 20);
  });

  it("deflates back to the original MemTotal", async () => {
    await settle(b, 0);
    const m = meminfo(await b.vm.run("cat /proc/meminfo"));
    await settle(b, 8 * MiB);
    await settle(b, 0);
    expect(meminfo(await b.vm.run("cat /proc/meminfo")).MemTotal).toBe(m.MemTotal);
    expect(b.host.counters().pagesDeflated).toBeGreaterThanOrEqual(40 * MiB);
  });

  it("receives stats with sane values", async () => {
    const sample = await b.host.requestStats();
    const guest = meminfo(await b.vm.run("cat /proc/meminfo"));
    expect(sample.time).toBeGreaterThan(0);
    expect(sample.values.MEMTOT! / 1024).toBeCloseTo(guest.MemTotal, -3);
    expect(sample.values.MEMFREE!).toBeGreaterThan(0);
    expect(sample.values.MEMFREE!).toBeLessThanOrEqual(sample.values.MEMTOT!);
    expect(sample.values.AVAIL!).toBeLessThanOrEqual(sample.values.MEMTOT!);
  });

  it("gets free page reports after the guest frees a large allocation", async () => {
    const before = b.host.counters().pagesReported;
    await b.vm.run("memtouch 64");
    await until(() => b.host.counters().pagesReported - before >= 16 * MiB, "16 MiB of free page reports", 60000,
      () => JSON.stringify(b.host.counters()));
  });

  it("completes two hinting cycles in a row", async () => {
    for (let cycle = 0; cycle < 2; cycle++) {
      const phases: string[] = [];
      const off = b.host.on("hint", (e) => phases.push(e.phase));
      const id = b.host.startHinting();
      expect(id).not.toBeNull();
      await until(() => phases.includes("driver-stopped"), `hinting cycle ${cycle} to end (phases ${phases})`, 60000);
      b.host.stopHinting();
      off();
      expect(phases).toContain("started");
    }
    expect(b.host.counters().hintCycles).toBeGreaterThanOrEqual(2);
    expect(b.host.counters().pagesHinted).toBeGreaterThan(0);
  });

  it("saves, restores, and keeps ballooning", async () => {
    await settle(b, 4 * MiB);
    const state = await b.vm.saveState();
    // The gate a loader runs before handing a state file to v86 (no emulator needed).
    expect(checkBalloonSnapshot(state, { memoryBytes: 256 << 20, features: { DEFLATE_ON_OOM: false } })).toMatchObject({ checked: true, live: true });
    expect(() => checkBalloonSnapshot(state, { memoryBytes: 128 << 20 })).toThrow(StateError);
    await settle(b, 12 * MiB);
    await b.vm.restoreState(state);
    expect(b.host.actual).toBe(4 * MiB);
    expect(b.host.inflatedPages).toBe(4 * MiB);
    expect((await b.vm.run("echo alive")).trim()).toBe("alive");
    await settle(b, 16 * MiB);
    // A state whose balloon part is bad is refused before v86 restores anything: the VM runs on as it was.
    const bad = editBalloonJson(await b.vm.saveState(), (j) => { j.transport = { ...j.transport, queueSelect: 0.5 }; });
    await expect(b.vm.restoreState(bad)).rejects.toThrow(/transport\.queueSelect/);
    expect(b.host.actual).toBe(16 * MiB);
    expect((await b.vm.run("echo still alive")).trim()).toBe("still alive");
    await settle(b, 0);
  });

  it("saw no driver-side violation from the driver, from attach on (Linux's early stats notify is classified tolerated)", () => {
    // Precondition: the subscription saw the probe (Linux kicks its first stats buffer before DRIVER_OK).
    expect(diags.filter((d) => d.kind === "notify-before-driver-ok").map((d) => d.severity)).toEqual(["tolerated"]);
    const violations = diags.filter((d) => d.severity === "violation");
    expect(violations).toEqual([]);
  });
});

describe("Linux driver with page_poison=1 and DEFLATE_ON_OOM", () => {
  let b: BalloonVM;
  const diags: BalloonDiagnostic[] = [];
  beforeAll(async () => {
    // Inflates to within a few MiB of what the guest can spare, on purpose: no host floor.
    b = await startNodeBalloonVM({
      memoryMiB: 96, cmdlineExtra: "page_poison=1", balloon: { floor: "off" },
      onAttached: (a) => a.host.on("diagnostic", (d) => diags.push(d)),
    });
  });
  afterAll(async () => b?.vm.destroy());

  it("negotiates PAGE_POISON, gets poison_val, and fills inflated pages with it", async () => {
    expect(await guestFeatureBits(b)).toContain(4);
    await settle(b, 4 * MiB);
    const poison = b.device.readConfig(12, 4);
    expect(poison).toBe(0xaaaaaaaa);
    const bitmap = b.device.saveState().inflatedBitmap;
    const ram = b.adapter.memory.bytes();
    let checked = 0;
    for (let pfn = 0; pfn < bitmap.length * 8 && checked < 4 * MiB; pfn++) {
      if (!((bitmap[pfn >> 3] >> (pfn & 7)) & 1)) continue;
      checked++;
      expect(ram.subarray(pfn * 4096, pfn * 4096 + 4096).every((x) => x === 0xaa)).toBe(true);
    }
    expect(checked).toBe(4 * MiB);
  });

  it("gives pages back instead of OOM-killing when the guest allocates past its limit", async () => {
    await settle(b, 48 * MiB);
    const free = meminfo(await b.vm.run("cat /proc/meminfo")).MemFree;
    // Ask for more than is free: the driver deflates on OOM and memtouch survives.
    const want = Math.floor(free / 1024) + 16;
    const out = await b.vm.run(`memtouch ${want}`, { timeoutMs: 120000 });
    expect(out).toMatch(/memtouch: \d+ MiB in/);
    expect(b.host.counters().pagesDeflated).toBeGreaterThan(0);
    expect(b.host.actual).toBeLessThan(48 * MiB);
  });

  it("saw no violation from attach on (negotiation with PAGE_POISON included)", () => {
    expect(diags.some((d) => d.kind === "notify-before-driver-ok")).toBe(true);
    expect(diags.filter((d) => d.severity === "violation")).toEqual([]);
  });
});

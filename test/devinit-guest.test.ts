// DEVICE_INIT_REPORTED (6) and DEVICE_INIT_ON_INFLATE (7): our device against the patched Linux
// driver (guest/patches/), with the guest's own self-check (guest/programs/devinit-check.c).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeBalloonVM, type BalloonVM, type NodeBalloonVMOptions } from "../src/node/balloon-vm-node.js";
import { until, untilStable } from "../src/until.js";
import { readDevinitDebugfs } from "../devkit/devinit-debugfs.js";

// init_on_alloc only: freed pages keep stale data, so a device that does not fill what it claims
// leaves non-zero pages the driver's verify mode (devinit_verify=1) can see.
const CMDLINE = "init_on_alloc=1 virtio_balloon.devinit_verify=1";

// DEVINIT_GUEST_DIR: another image directory (e.g. an older build, to see these tests fail on it).
async function boot(opts: NodeBalloonVMOptions = {}): Promise<BalloonVM> {
  return startNodeBalloonVM({ memoryMiB: 256, cmdlineExtra: CMDLINE, imageDir: process.env.DEVINIT_GUEST_DIR, ...opts });
}

async function settle(b: BalloonVM, pages: number): Promise<void> {
  b.host.setTarget(pages);
  await until(() => b.host.actual === pages, `actual ${pages}`, 60000);
}

const debugfs = (b: BalloonVM) => readDevinitDebugfs(b.vm);

/** Stale data in free memory, then a 32 MiB inflate and deflate through the device. */
async function inflateDeflateOverStaleData(b: BalloonVM): Promise<void> {
  await b.vm.run("devinit-check dirty 96", { timeoutMs: 60000 });
  await settle(b, 32 * 256);
  await settle(b, 0);
}

describe("honest device", () => {
  let b: BalloonVM;
  beforeAll(async () => {
    b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false } } });
  });
  afterAll(async () => b?.vm.destroy());

  it("the patched driver negotiates both bits", async () => {
    expect(b.host.features.negotiatedNames).toEqual(expect.arrayContaining(["DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE"]));
    const d = await debugfs(b);
    expect([d.init_on_inflate, d.init_reported]).toEqual([1, 1]);
  });

  it("inflate bitmaps mark every page; deflated pages skip re-initialisation", async () => {
    await inflateDeflateOverStaleData(b);
    const d = await debugfs(b);
    expect(d.inflate_marked).toBe(32 * 256);
    expect(d.inflate_unmarked).toBe(0);
    expect(d.deflate_preinit).toBe(32 * 256);
    expect(d.balloon_alloc_noinit).toBeGreaterThanOrEqual(32 * 256); // seed 001: no zeroing on the way in
    expect(b.host.counters().bitmapsWritten).toBeGreaterThan(0);
  });

  it("reported pages covered by the used length are marked known-zero", async () => {
    await b.vm.run("memtouch 96");
    await until(() => b.host.counters().pagesReported > 0, "free page reports", 60000);
    await until(() => b.host.counters().requests.report > 0, "a report");
    const d = await debugfs(b);
    expect(d.report_covered).toBeGreaterThan(0);
    expect(d.report_marked).toBe(d.report_covered);
  });

  it("the guest self-check finds every page the driver trusted really zero", async () => {
    const out = await b.vm.run("devinit-check check 64", { timeoutMs: 120000 });
    const m = /checked=(\d+) bad=(\d+)/.exec(out)!;
    expect(Number(m[1])).toBeGreaterThan(0);
    expect(Number(m[2])).toBe(0);
  });
});

describe("lying device (fault injection: claims pages initialised without filling them)", () => {
  let b: BalloonVM;
  beforeAll(async () => {
    b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { lieAboutInit: true } } });
  });
  afterAll(async () => b?.vm.destroy());

  it("is caught by the guest self-check", async () => {
    await inflateDeflateOverStaleData(b);
    const out = await b.vm.run("devinit-check check 32", { timeoutMs: 120000, allowFailure: true });
    const m = /checked=(\d+) bad=(\d+)/.exec(out)!;
    expect(Number(m[2])).toBeGreaterThan(0);
    expect((await debugfs(b)).verify_bad).toBeGreaterThan(0);
  });
});

describe("zeroing the guest kernel no longer does (its allocator's own counters, debug patch 0009)", () => {
  const MIB32 = 32 * 256;
  const quiet = { features: { DEFLATE_ON_OOM: false, PAGE_REPORTING: false } };

  // One init_on_* per boot: with both, Linux skips init_on_alloc altogether (init_on_free already zeroed).
  for (const { init, step, counter, trust, name } of [
    { init: "init_on_alloc=1", step: "inflate", counter: "zeroed_on_alloc", trust: 1, name: "init_on_alloc=1, inflate 32 MiB, patched driver: balloon pages are not zeroed" },
    { init: "init_on_alloc=1", step: "inflate", counter: "zeroed_on_alloc", trust: 0, name: "init_on_alloc=1, inflate 32 MiB, trust_device_init=0: every balloon page is zeroed (stock)" },
    { init: "init_on_free=1", step: "deflate", counter: "zeroed_on_free", trust: 1, name: "init_on_free=1, deflate 32 MiB, bit 7: device-initialised pages are not zeroed again" },
    { init: "init_on_free=1", step: "deflate", counter: "zeroed_on_free", trust: 0, name: "init_on_free=1, deflate 32 MiB, trust_device_init=0: every page is zeroed on free (stock)" },
  ]) {
    it(name, async () => {
      const b = await boot({ cmdlineExtra: `${init} virtio_balloon.trust_device_init=${trust}`, balloon: quiet });
      try {
        if (step === "deflate") await settle(b, MIB32);
        const before = (await debugfs(b))[counter]!;
        await settle(b, step === "inflate" ? MIB32 : 0);
        const zeroed = (await debugfs(b))[counter]! - before;
        if (trust) {
          // Seed 001: balloon pages are not zeroed on the way in; bit 7: nor again on the way out.
          // The allowance covers what the shell and `cat` allocate and free meanwhile.
          expect(zeroed).toBeLessThan(MIB32 / 8);
        } else {
          expect(zeroed).toBeGreaterThanOrEqual(MIB32);
        }
      } finally {
        await b.vm.destroy();
      }
    });
  }
});

describe("negotiation rules on the guest side", () => {
  it("a driver told not to trust the device (trust_device_init=0) refuses both bits", async () => {
    const b = await boot({ cmdlineExtra: `${CMDLINE} virtio_balloon.trust_device_init=0` });
    try {
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_REPORTED");
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_ON_INFLATE");
      expect(b.host.features.negotiatedNames).toContain("PAGE_REPORTING");
    } finally {
      await b.vm.destroy();
    }
  });

  it("bit 6 is dropped by the driver when PAGE_REPORTING is not offered", async () => {
    const b = await boot({ balloon: { features: { PAGE_REPORTING: false } } });
    try {
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_REPORTED");
      expect(b.host.features.negotiatedNames).toContain("DEVICE_INIT_ON_INFLATE");
    } finally {
      await b.vm.destroy();
    }
  });
});

describe("device faults on the init bits, and what the patched driver does with them", () => {
  it("padding bits set in the last bitmap byte (set-padding-bits): the driver marks only the N real pages", async () => {
    const b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { setPaddingBits: true } } });
    try {
      await settle(b, 100); // one request of 100 PFNs: 4 padding bits in byte 12
      const d = await debugfs(b);
      expect(d.inflate_marked).toBe(100);
      await settle(b, 0);
      const out = await b.vm.run("devinit-check check 16", { timeoutMs: 120000 });
      expect(/bad=(\d+)/.exec(out)![1]).toBe("0");
    } finally {
      await b.vm.destroy();
    }
  });

  it("a used length one page short on reports (short-report-used-length): the uncovered page is not trusted", async () => {
    const b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { shortReportUsedLength: true } } });
    try {
      await b.vm.run("memtouch 96");
      await until(() => b.host.counters().requests.report > 0, "a report", 60000);
      // Compare the two sides once reports have stopped.
      await untilStable(() => b.host.counters().pagesReported, "reports to settle");
      // The device counts a report before the driver sees it back: read the driver's side first.
      const d = await debugfs(b);
      const reported = b.host.counters().pagesReported;
      expect(d.report_covered).toBeGreaterThan(0);
      expect(d.report_covered).toBeLessThan(reported); // each report: one page fewer than the device filled
      expect(d.report_marked).toBe(d.report_covered);
      const out = await b.vm.run("devinit-check check 32", { timeoutMs: 120000 });
      expect(/bad=(\d+)/.exec(out)![1]).toBe("0");
    } finally {
      await b.vm.destroy();
    }
  });
});

/** One /proc/meminfo field, in KiB. */
async function meminfoKiB(b: BalloonVM, field: string): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(await b.vm.run("cat /proc/meminfo"));
  if (!m) throw new Error(`no ${field} in /proc/meminfo`);
  return Number(m[1]);
}

describe("a page is called zeroed only where the spec guarantees its contents", () => {
  it("scribble-reported (no bit 6): pages deflated under bit 7, then reported and overwritten, are never handed out as zero", async () => {
    let scribbled = 0;
    // No devinit_verify: the allocator's own check would zero a bad page and hide what a user sees.
    const b = await boot({
      cmdlineExtra: "",
      balloon: { features: { DEFLATE_ON_OOM: false, DEVICE_INIT_REPORTED: false }, faults: { scribbleReported: true } },
      onAttached: (a) => a.host.on("fault", (e) => {
        if (e.fault === "scribbleReported") scribbled += Number(e.detail.bytes);
      }),
    });
    try {
      expect(b.host.features.negotiatedNames).toEqual(expect.arrayContaining(["DEVICE_INIT_ON_INFLATE", "PAGE_REPORTING"]));
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_REPORTED");
      await settle(b, 32 * 256);
      await settle(b, 0);
      expect((await debugfs(b)).deflate_zeroed).toBe(32 * 256); // the deflated pages were marked zeroed
      // The device overwrites what the driver reports, the deflated pages among it (they merge into
      // the large free blocks page reporting takes).
      await until(() => scribbled >= 32 << 20, "32 MiB of reports scribbled on", 120000);
      await untilStable(() => scribbled, "reports to settle", 5000, 120000);
      // Take nearly all free memory, as zeroed anonymous pages, and read every byte.
      const mib = Math.floor((await meminfoKiB(b, "MemFree")) / 1024) - 24;
      const out = await b.vm.run(`memtouch --populate --check-zero ${mib}`, { timeoutMs: 300000, allowFailure: true });
      expect(out).toMatch(/check-zero: 0 non-zero pages/);
    } finally {
      await b.vm.destroy();
    }
  });
});

describe("denial of service: the driver leaves the guest a floor (virtio_balloon.floor_mb; default 32 MiB + RAM/64)", () => {
  /** Waits for the balloon to stop growing, then checks the guest still works. */
  async function heldAtFloor(b: BalloonVM): Promise<void> {
    expect(b.host.features.negotiatedNames).not.toContain("DEFLATE_ON_OOM");
    await until(() => b.host.actual > 0, "the balloon to inflate", 120000);
    await untilStable(() => b.host.actual, "the balloon to stop growing", 5000, 300000);
    expect(b.host.actual).toBeLessThan(256 * 256);
    expect(await meminfoKiB(b, "MemTotal")).toBeGreaterThanOrEqual(32 * 1024);
    expect(await b.vm.run("dmesg | grep -c 'the guest keeps [0-9]* MiB (floor_mb)'")).toMatch(/^[1-9]/);
    expect(await b.vm.run("memtouch 8 && echo alive", { timeoutMs: 60000 })).toMatch(/alive/);
  }

  it("a target of the whole RAM stops at the floor; the guest stays responsive and deflates back", async () => {
    const b = await boot({ cmdlineExtra: "", balloon: { features: { DEFLATE_ON_OOM: false } } });
    try {
      b.host.setTarget(256 * 256);
      await heldAtFloor(b);
      await settle(b, 0);
    } finally {
      await b.vm.destroy();
    }
  });

  it("huge-num-pages (0xFFFFFFFF) stops at the floor; a sane target is followed afterwards", async () => {
    const b = await boot({ cmdlineExtra: "", balloon: { features: { DEFLATE_ON_OOM: false }, faults: { hugeNumPages: true } } });
    try {
      await heldAtFloor(b);
      await settle(b, 16 * 256);
    } finally {
      await b.vm.destroy();
    }
  });
});

// Hibernation cannot run in this guest (no swap, no block device): the freeze/thaw of devices that
// starts it can (pm_test). The mm side clears every free page's mark when the image is made.
describe("freeze/thaw (the first step of hibernation)", () => {
  it("the driver's freeze deflates the ordinary way: no page freed there is marked zeroed or skips its init", async () => {
    const b = await boot({ cmdlineExtra: "", balloon: { features: { DEFLATE_ON_OOM: false, PAGE_REPORTING: false } } });
    try {
      expect(await b.vm.run("cat /sys/power/state")).toMatch(/freeze/);
      await settle(b, 32 * 256);
      const before = await debugfs(b);
      expect(before.devinit_pages_in_balloon).toBe(32 * 256);
      const deflated = b.host.counters().pagesDeflated;
      await b.vm.run("echo devices > /sys/power/pm_test && echo freeze > /sys/power/state", { timeoutMs: 180000 });
      expect(b.host.counters().pagesDeflated - deflated).toBeGreaterThanOrEqual(32 * 256); // the freeze deflated
      const after = await debugfs(b);
      expect(after.deflate_zeroed).toBe(before.deflate_zeroed);
      expect(after.deflate_preinit).toBe(before.deflate_preinit);
      await until(() => b.host.actual === 32 * 256, "the thawed driver to inflate again", 120000);
    } finally {
      await b.vm.destroy();
    }
  });
});

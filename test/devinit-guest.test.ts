// DEVICE_INIT_REPORTED (6) and DEVICE_INIT_ON_INFLATE (7): our device against the patched Linux
// driver (guest/patches/), with the guest's own self-check (guest/programs/devinit-check.c).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeBalloonVM, type BalloonVM, type NodeBalloonVMOptions } from "../src/node/balloon-vm-node.js";
import { until, untilStable } from "./support/until.js";
import { readDevinitDebugfs } from "./support/devinit-debugfs.js";

// init_on_alloc only: freed pages keep stale data, so a device that does not fill what it claims
// leaves non-zero pages the driver's verify mode (devinit_verify=1) can see.
const CMDLINE = "init_on_alloc=1 virtio_balloon.devinit_verify=1";

async function boot(opts: NodeBalloonVMOptions = {}): Promise<BalloonVM> {
  return startNodeBalloonVM({ memoryMiB: 256, cmdlineExtra: CMDLINE, ...opts });
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

describe("zeroing the guest kernel no longer does (its allocator's own counters, patch 0001)", () => {
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
      const reported = b.host.counters().pagesReported;
      const d = await debugfs(b);
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

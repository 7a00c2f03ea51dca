// DEVICE_INIT_REPORTED (6) and DEVICE_INIT_ON_INFLATE (7): our device against the patched Linux
// driver (guest/patches/), with the guest's own self-check (guest/programs/devinit-check.c).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeBalloonVM, type BalloonVM, type NodeBalloonVMOptions } from "../src/node/balloon-vm-node.js";
import { until, untilStable } from "../src/until.js";
import { readDevinitDebugfs } from "../devkit/devinit-debugfs.js";
import type { AttachedBalloon } from "../src/host/attach.js";
import type { FaultName } from "../src/balloon/fault-modes.js";

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

const BIT6 = "DEVICE_INIT_REPORTED";
const BIT7 = "DEVICE_INIT_ON_INFLATE";

/** Precondition: these features were (not) negotiated. */
function expectNegotiated(b: BalloonVM, yes: string[], no: string[] = []): void {
  expect(b.host.features.negotiatedNames).toEqual(expect.arrayContaining(yes));
  for (const n of no) expect(b.host.features.negotiatedNames).not.toContain(n);
}

/** Counts the device's fault events from boot on (boot option `onAttached`), to assert a fault acted. */
function faultLog() {
  const acts: Partial<Record<FaultName, number>> = {};
  return {
    acts,
    onAttached: (a: AttachedBalloon) => a.host.on("fault", (e) => {
      acts[e.fault] = (acts[e.fault] ?? 0) + 1;
    }),
  };
}

/** Kernel reports of a broken kernel in the guest's log. */
async function kernelComplaints(b: BalloonVM): Promise<string> {
  return b.vm.run("dmesg | grep -E 'Oops|BUG|WARNING|Bad page|Kernel panic|Call Trace' || true", { timeoutMs: 60000 });
}

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
    expectNegotiated(b, [BIT7]);
    await inflateDeflateOverStaleData(b);
    const d = await debugfs(b);
    expect(d.inflate_marked).toBe(32 * 256);
    expect(d.inflate_unmarked).toBe(0);
    expect(d.deflate_preinit).toBe(32 * 256);
    expect(d.balloon_alloc_noinit).toBeGreaterThanOrEqual(32 * 256); // seed 001: no zeroing on the way in
    expect(b.host.counters().bitmapsWritten).toBeGreaterThan(0);
  });

  it("reported pages covered by the used length are marked known-zero", async () => {
    expectNegotiated(b, [BIT6, "PAGE_REPORTING"]);
    await b.vm.run("memtouch 96");
    await until(() => b.host.counters().pagesReported > 0, "free page reports", 60000);
    await until(() => b.host.counters().requests.report > 0, "a report");
    const d = await debugfs(b);
    expect(d.report_covered).toBeGreaterThan(0);
    expect(d.report_marked).toBe(d.report_covered);
  });

  it("the guest self-check finds every page the driver trusted really zero", async () => {
    expectNegotiated(b, [BIT6, BIT7]);
    const out = await b.vm.run("devinit-check check 64", { timeoutMs: 120000 });
    const m = /checked=(\d+) bad=(\d+)/.exec(out)!;
    expect(Number(m[1])).toBeGreaterThan(0);
    expect(Number(m[2])).toBe(0);
  });
});

describe("lying device (fault injection: claims pages initialised without filling them)", () => {
  let b: BalloonVM;
  const log = faultLog();
  beforeAll(async () => {
    b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { lieAboutInit: true } }, onAttached: log.onAttached });
  });
  afterAll(async () => b?.vm.destroy());

  it("is caught by the guest self-check", async () => {
    expectNegotiated(b, [BIT7]);
    await inflateDeflateOverStaleData(b);
    expect(log.acts.lieAboutInit).toBeGreaterThan(0); // the device did claim unfilled pages
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
        const d0 = await debugfs(b);
        expect(d0[init.split("=")[0]!]).toBe(1); // the kernel runs with this init_on_* on
        expect([d0.init_on_inflate, d0.trust_device_init]).toEqual([trust, trust]);
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
      expect(b.host.features.offeredNames).toEqual(expect.arrayContaining([BIT6, BIT7])); // offered, refused
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_REPORTED");
      expect(b.host.features.negotiatedNames).not.toContain("DEVICE_INIT_ON_INFLATE");
      expect(b.host.features.negotiatedNames).toContain("PAGE_REPORTING");
    } finally {
      await b.vm.destroy();
    }
  });

  it("bit 6 offered without PAGE_REPORTING (offer-unchecked): the driver does not accept it", async () => {
    // A correct device never offers bit 6 alone (it needs bit 5): the fault makes ours do it.
    const log = faultLog();
    const b = await boot({
      balloon: { features: { PAGE_REPORTING: false, DEVICE_INIT_REPORTED: true }, faults: { offerUnchecked: true } },
      onAttached: log.onAttached,
    });
    try {
      expect(b.host.features.offeredNames).toContain(BIT6);
      expect(b.host.features.offeredNames).not.toContain("PAGE_REPORTING");
      expect(log.acts.offerUnchecked).toBeGreaterThan(0);
      expect(b.host.features.negotiatedNames).not.toContain(BIT6);
      expect(b.host.features.negotiatedNames).toContain(BIT7); // the driver negotiated, and kept what it may
    } finally {
      await b.vm.destroy();
    }
  });
});

describe("device faults on the init bits, and what the patched driver does with them", () => {
  it("padding bits set in the last bitmap byte (set-padding-bits): the driver marks only the N real pages", async () => {
    const log = faultLog();
    const b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { setPaddingBits: true } }, onAttached: log.onAttached });
    try {
      expectNegotiated(b, [BIT7]);
      await settle(b, 100); // one request of 100 PFNs: 4 padding bits in byte 12
      expect(log.acts.setPaddingBits).toBeGreaterThan(0);
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
    const log = faultLog();
    const b = await boot({ balloon: { features: { DEFLATE_ON_OOM: false }, faults: { shortReportUsedLength: true } }, onAttached: log.onAttached });
    try {
      expectNegotiated(b, [BIT6, "PAGE_REPORTING"]);
      await b.vm.run("memtouch 96");
      await until(() => b.host.counters().requests.report > 0, "a report", 60000);
      // Compare the two sides once reports have stopped.
      await untilStable(() => b.host.counters().pagesReported, "reports to settle");
      // The device counts a report before the driver sees it back: read the driver's side first.
      const d = await debugfs(b);
      const reported = b.host.counters().pagesReported;
      expect(log.acts.shortReportUsedLength).toBeGreaterThan(0);
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
      expect(b.host.counters().faults.hugeNumPages).toBeGreaterThan(0); // num_pages 0xFFFFFFFF shown
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
      expectNegotiated(b, [BIT7]);
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

// Memory failure (CONFIG_MEMORY_FAILURE, hwpoison-inject's debugfs files) on pages the device
// initialised: poisoned in the balloon, in flight, and as free pages marked known-zero.
describe("memory failure on device-initialised pages (hwpoison-inject)", () => {
  const HWPOISON = "/sys/kernel/debug/hwpoison";
  const KPF_HWPOISON = 19n;
  const KPF_PRIVATE_2 = 36n; // PG_private_2, which PageZeroed aliases (patch 0003)

  /** /proc/kpageflags of each PFN (64 per shell line: the tty takes one line at a time). */
  async function pageFlags(b: BalloonVM, pfns: number[]): Promise<Map<number, bigint>> {
    const flags = new Map<number, bigint>();
    for (let i = 0; i < pfns.length; i += 64) {
      const out = await b.vm.run(
        `for p in ${pfns.slice(i, i + 64).join(" ")}; do echo "kpf $p $(dd if=/proc/kpageflags bs=8 skip=$p count=1 2>/dev/null | od -An -tx1)"; done`,
        { timeoutMs: 120000 },
      );
      for (const m of out.matchAll(/^kpf (\d+) ((?:\s*[0-9a-f]{2}){8})\s*$/gm)) {
        const bytes = m[2]!.trim().split(/\s+/);
        flags.set(Number(m[1]), bytes.reduce((v, x, k) => v | (BigInt(parseInt(x, 16)) << BigInt(8 * k)), 0n));
      }
    }
    expect(flags.size).toBe(pfns.length);
    return flags;
  }
  const has = (f: bigint | undefined, bit: bigint) => f !== undefined && ((f >> bit) & 1n) === 1n;

  /** Writes each PFN to one of hwpoison-inject's files (a refused write is the kernel's answer, not an error). */
  async function writeEach(b: BalloonVM, file: string, pfns: number[]): Promise<void> {
    for (let i = 0; i < pfns.length; i += 64) {
      await b.vm.run(`for p in ${pfns.slice(i, i + 64).join(" ")}; do echo $p > ${HWPOISON}/${file}; done 2>/dev/null; true`, { timeoutMs: 120000 });
    }
  }

  async function dmesgCount(b: BalloonVM, pattern: string): Promise<number> {
    return Number((await b.vm.run(`dmesg | grep -c '${pattern}' || true`)).trim());
  }

  it("poisoned while the balloon deflates, and as marked free pages: no oops; a page unpoisoned after the hardware changed it is zeroed before use", async () => {
    const MIB32 = 32 * 256;
    // No reporting (it would clear the marks this test needs); every used buffer 250 ms late, so the
    // deflate of 32 MiB (32 requests of 256 PFNs) lasts ~8 s and the poisoning runs inside it.
    // No devinit_verify: the allocator's own check would zero a bad page and hide what a user sees.
    const b = await boot({ cmdlineExtra: "", balloon: { features: { DEFLATE_ON_OOM: false, PAGE_REPORTING: false }, faults: { delayUsedMs: 250 } } });
    try {
      expectNegotiated(b, [BIT7], ["PAGE_REPORTING"]);
      expect(await b.vm.run(`ls ${HWPOISON}`)).toMatch(/corrupt-pfn[\s\S]*unpoison-pfn/);
      await settle(b, MIB32);
      const inflated: number[] = [];
      for (let pfn = 0; pfn < b.device.ramPages; pfn++) if (b.device.isInflated(pfn)) inflated.push(pfn);
      expect(inflated).toHaveLength(MIB32);
      const corruptedKiB0 = await meminfoKiB(b, "HardwareCorrupted");

      // 1. While the balloon deflates: 64 PFNs spread over the balloon; some are still in it or on
      // their way out, some already free and marked.
      const during = inflated.filter((_, i) => i % 128 === 64);
      const deflated0 = b.host.counters().pagesDeflated;
      b.host.setTarget(0);
      await until(() => b.host.counters().pagesDeflated - deflated0 >= MIB32 / 8, "the deflate to be under way", 60000);
      await writeEach(b, "corrupt-pfn", during);
      expect(b.host.actual).toBeGreaterThan(0); // the poisoning ran while the balloon was deflating
      await until(() => b.host.actual === 0, "the deflate to finish", 120000);
      expect(await dmesgCount(b, "recovery action for")).toBeGreaterThanOrEqual(during.length);
      expect(await dmesgCount(b, "recovery action for free buddy page: Recovered")).toBeGreaterThan(0);
      expect(await kernelComplaints(b)).toBe("");
      const d = await debugfs(b);
      expect(d.deflate_zeroed).toBeGreaterThan(MIB32 / 2); // most deflated pages were marked known-zero

      // 2. Free pages the driver marked known-zero: poison them.
      const flags = await pageFlags(b, inflated.filter((_, i) => i % 32 === 7));
      const marked = [...flags].filter(([, f]) => has(f, KPF_PRIVATE_2) && !has(f, KPF_HWPOISON)).map(([p]) => p);
      expect(marked.length).toBeGreaterThanOrEqual(64); // the precondition: free pages carrying the mark
      const corruptedKiB1 = await meminfoKiB(b, "HardwareCorrupted");
      expect(corruptedKiB1).toBeGreaterThan(corruptedKiB0);
      await writeEach(b, "corrupt-pfn", marked);
      const poisoned = await pageFlags(b, marked);
      expect([...poisoned.values()].every((f) => has(f, KPF_HWPOISON))).toBe(true); // the poison acted
      expect(await meminfoKiB(b, "HardwareCorrupted")).toBe(corruptedKiB1 + 4 * marked.length);
      // The series: a page taken off the free lists by memory failure loses its mark.
      const stillMarked = [...poisoned].filter(([, f]) => has(f, KPF_PRIVATE_2)).map(([p]) => p);

      // 3. The "hardware" changes the poisoned pages (what a real memory error does), then they are
      // unpoisoned and go back to the free lists; a zeroed allocation must not see the change.
      for (const pfn of marked) b.device.hot.fillRange(pfn * 4096, 4096, 0x5a);
      await writeEach(b, "unpoison-pfn", marked);
      const unpoisoned = await pageFlags(b, marked);
      expect([...unpoisoned.values()].some((f) => has(f, KPF_HWPOISON))).toBe(false);
      expect(await meminfoKiB(b, "HardwareCorrupted")).toBe(corruptedKiB1);
      const mib = Math.floor((await meminfoKiB(b, "MemFree")) / 1024) - 24;
      const out = await b.vm.run(`memtouch --populate --check-zero ${mib}`, { timeoutMs: 300000, allowFailure: true });
      expect(out).toMatch(/check-zero: 0 non-zero pages/);
      expect(stillMarked).toEqual([]);
      expect(await kernelComplaints(b)).toBe("");
    } finally {
      await b.vm.destroy();
    }
  });
});

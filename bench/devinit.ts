/**
 * What DEVICE_INIT_ON_INFLATE (7) / DEVICE_INIT_REPORTED (6) and the balloon's no-init allocation
 * (seed 001) save inside a v86 guest. Each scenario boots GUESTS guests of each variant — with the
 * feature, without it, without init_on_* at all ("no_init"), and without init_on_* but with the
 * feature ("no_init_feature", the feature's own bookkeeping cost) — warms each up once, then
 * rotates through all of them round by round while every other guest is paused. Figures are
 * medians over all ROUNDS x GUESTS samples of a variant.
 *
 *   deflate                 deflate 256 MiB, init_on_free=1, bit 7 on vs off   (host wall ms, guest instr)
 *   inflate                 inflate 256 MiB, init_on_alloc=1, patched vs stock allocation
 *                           (stock = virtio_balloon.trust_device_init=0, which restores the zeroing)
 *   populate_after_deflate  inflate + deflate 256 MiB, then MAP_POPULATE 256 MiB (guest clock),
 *                           init_on_alloc=1, bit 7 on vs off
 *   populate_after_report   dirty + free 300 MiB, reports settle, then MAP_POPULATE 256 MiB,
 *                           init_on_alloc=1, bit 6 on vs off
 *   boot_balloon_down       the target (256 MiB) is set before the driver probes, init_on_alloc=1,
 *                           patched vs stock allocation: host ms from the first inflate request to
 *                           `actual` at the target, a fresh guest per sample (seed 001 at boot)
 *
 * Two measures of "zeroing still paid" (zeroing_left):
 *  - time, as the issue defines it: (with - no_init) / (without - no_init) on host wall time. One
 *    step varies by +-20 % from sample to sample (v86's JIT, V8's GC), as much as the zeroing it
 *    measures, so the time scenarios take many samples per variant and publish a 90 % bootstrap
 *    interval of the share (`_ci_low`, `_ci_high`) beside it. (Host CPU time was tried and is
 *    worse: V8 compiles v86's generated wasm on background threads.)
 *    The time share also charges to "zeroing" the struct-page checks that init_on_* switches on
 *    (check_pages_enabled), which the no_init boot does not run; README shows their size.
 *  - pages: the guest kernel counts every page its allocator zeroes (debugfs zeroed_on_alloc +
 *    zeroed_on_free, read before and after the step), which no timing noise touches. Every page
 *    costs one clear_page, so this is the share of the zeroing cost; the goal is judged on it.
 * In the populate scenarios the no_init boot zeroes just as much as the init_on_alloc one (x86
 * anonymous faults zero with __GFP_ZERO whatever init_on_alloc says; the counters show it), so
 * the time formula divides noise by noise. There the avoidable zeroing is all of it: the page
 * share is zeroed_with / zeroed_without, and no time share is published.
 */
import { startNodeBalloonVM, type BalloonVM } from "../src/node/balloon-vm-node.js";
import type { FeatureOffer } from "../src/balloon/features.js";
import { instructionsSince, median, msUntil } from "./support.js";
import { untilStable } from "../src/until.js";
import { rng } from "../devkit/rng.js";
import { readDevinitDebugfs } from "../devkit/devinit-debugfs.js";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// A full GC before each measured round, so V8 does not pick the middle of one.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

const PAGES = 256 * 256;
const GUESTS = Number(process.env.DEVINIT_GUESTS ?? 2);
/** Measured rounds per guest; DEVINIT_ROUNDS overrides every scenario's own number. */
const ROUNDS = process.env.DEVINIT_ROUNDS ? Number(process.env.DEVINIT_ROUNDS) : undefined;
const BOOTSTRAP = 2000;
/** DEVINIT_RESIDENT=0 leaves guest RAM to be faulted in by the guest, as in a fresh VM. */
const RESIDENT = process.env.DEVINIT_RESIDENT !== "0";
/** DEVINIT_SCENARIOS=deflate,inflate runs only those. */
const ONLY = process.env.DEVINIT_SCENARIOS?.split(",");
/** DEVINIT_GUEST_DIR: other guest images (a directory laid out like public/guest/), e.g. an older build. */
const IMAGE_DIR = process.env.DEVINIT_GUEST_DIR;
const QEMU_ANCHOR = "QEMU (spec patch v3): 256 MiB allocation in a 2 GiB guest 232 -> 51 ms (-78 %)";

/** no_init_feature: booted without init_on_*, feature on — what the feature costs when there is nothing to skip. */
type Variant = "with" | "without" | "no_init" | "no_init_feature";
const VARIANTS: Variant[] = ["with", "without", "no_init", "no_init_feature"];
interface VariantSetup { cmdline: string; features: FeatureOffer }
interface Timing { ms: number; instructions?: number }
interface Sample extends Timing { zeroed: number }
interface Scenario {
  name: string;
  memoryMiB: number;
  /** What a zero-free run would zero: the no_init boot, or nothing (see the populate note above). */
  baseline: "no_init" | "nothing";
  /** Measured rounds per guest: many where a time share is computed, few where only pages count. */
  rounds: number;
  variants: Record<Exclude<Variant, "no_init_feature">, VariantSetup>;
  /** One measured round: the measured step goes through `counted`. */
  round(b: BalloonVM): Promise<Sample>;
}
/** Samples of one variant from one guest (or, at boot, from fresh guests). */
interface Group { variant: Variant; samples: Sample[] }
interface Guest extends Group { b: BalloonVM }

/** Only what a scenario needs, so nothing else (reports, hints, stats) runs during a measurement. */
const QUIET: FeatureOffer = {
  MUST_TELL_HOST: true, STATS_VQ: false, DEFLATE_ON_OOM: false, FREE_PAGE_HINT: false, PAGE_POISON: false,
  PAGE_REPORTING: false, DEVICE_INIT_REPORTED: false, DEVICE_INIT_ON_INFLATE: false,
};

/**
 * Makes every host page behind guest RAM resident (one byte per page written back unchanged), so a
 * guest write later costs the write and not a first-touch fault of this machine's kernel or its
 * hypervisor, which come and go with the machine's memory state and swamp the zeroing measured.
 * The bytes keep their values, so no compiled guest code goes stale (no JIT invalidation needed).
 */
function makeResident(b: BalloonVM): void {
  const ram = b.adapter.memory.bytes();
  for (let i = 0; i < ram.length; i += 4096) ram[i] = ram[i]!;
}

/** Pages the guest's page allocator has zeroed so far (counters of the debug patch 0009). */
async function zeroedPages(b: BalloonVM): Promise<number> {
  const d = await readDevinitDebugfs(b.vm);
  if (d.zeroed_on_alloc === undefined || d.zeroed_on_free === undefined) {
    throw new Error("the guest's devinit debugfs has no zeroed_on_* lines (guest built without the debug patch guest/patches/0009-*?)");
  }
  return d.zeroed_on_alloc + d.zeroed_on_free;
}

/** Runs one measured step and counts the pages the guest zeroed meanwhile (the two reads add a few). */
async function counted(b: BalloonVM, step: () => Promise<Timing>): Promise<Sample> {
  const before = await zeroedPages(b);
  const t = await step();
  return { ...t, zeroed: (await zeroedPages(b)) - before };
}

async function setTarget(b: BalloonVM, pages: number): Promise<Timing> {
  const i0 = b.adapter.instructionCounter();
  const got = b.host.setTarget(pages);
  if (got !== pages) throw new Error(`the host held the target at ${got} pages, not ${pages}: ${b.host.limit().reason}`);
  const ms = await msUntil(() => b.host.actual === pages);
  return { ms, instructions: instructionsSince(i0, b.adapter.instructionCounter()) };
}

/** MAP_POPULATE of 256 MiB timed by the guest's own clock. */
async function populate(b: BalloonVM): Promise<Timing> {
  const out = await b.vm.run("memtouch --populate 256", { timeoutMs: 120000 });
  const m = /in ([\d.]+) ms/.exec(out);
  if (!m) throw new Error(`memtouch printed no time: ${out}`);
  return { ms: Number(m[1]) };
}

const bit7 = { ...QUIET, DEVICE_INIT_ON_INFLATE: true };
const reporting = { ...QUIET, PAGE_REPORTING: true };
const bit6 = { ...reporting, DEVICE_INIT_REPORTED: true };

const SCENARIOS: Scenario[] = [
  {
    name: "deflate",
    memoryMiB: 512,
    baseline: "no_init",
    rounds: 16,
    variants: {
      with: { cmdline: "init_on_free=1", features: bit7 },
      without: { cmdline: "init_on_free=1", features: QUIET },
      no_init: { cmdline: "", features: QUIET },
    },
    async round(b) {
      await setTarget(b, PAGES);
      return counted(b, () => setTarget(b, 0));
    },
  },
  {
    name: "inflate",
    memoryMiB: 512,
    baseline: "no_init",
    rounds: 16,
    variants: {
      with: { cmdline: "init_on_alloc=1", features: QUIET },
      without: { cmdline: "init_on_alloc=1 virtio_balloon.trust_device_init=0", features: QUIET },
      no_init: { cmdline: "", features: QUIET },
    },
    async round(b) {
      const r = await counted(b, () => setTarget(b, PAGES));
      await setTarget(b, 0);
      return r;
    },
  },
  {
    name: "populate_after_deflate",
    // Small enough that the populate is served from the pages just deflated: in a 512 MiB guest
    // Linux hands MAP_POPULATE other free pages first and the deflated ones sit unused.
    memoryMiB: 320,
    baseline: "nothing",
    rounds: 5,
    variants: {
      with: { cmdline: "init_on_alloc=1", features: bit7 },
      without: { cmdline: "init_on_alloc=1", features: QUIET },
      no_init: { cmdline: "", features: QUIET },
    },
    async round(b) {
      await setTarget(b, PAGES);
      await setTarget(b, 0);
      return counted(b, () => populate(b));
    },
  },
  {
    name: "populate_after_report",
    // Linux reports only while free memory exceeds the low watermark + 128 MiB.
    memoryMiB: 512,
    baseline: "nothing",
    rounds: 4,
    variants: {
      with: { cmdline: "init_on_alloc=1", features: bit6 },
      without: { cmdline: "init_on_alloc=1", features: reporting },
      no_init: { cmdline: "", features: reporting },
    },
    async round(b) {
      await b.vm.run("memtouch 300", { timeoutMs: 120000 });
      await untilStable(() => b.host.counters().pagesReported, "free page reports to settle");
      return counted(b, () => populate(b));
    },
  },
];

/** Seed 001 at boot: each sample boots a fresh guest whose balloon target is set before the driver probes. */
async function bootBalloonDown(rounds: number): Promise<Group[]> {
  const cmdlines = { with: "init_on_alloc=1", without: "init_on_alloc=1 virtio_balloon.trust_device_init=0", no_init: "" };
  const groups = (["with", "without", "no_init"] as const).map((variant) => ({ variant, samples: [] as Sample[] }));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < groups.length; k++) {
      const g = groups[(k + r) % groups.length]!;
      const v = g.variant as keyof typeof cmdlines;
      let start = NaN, i0 = 0, end = NaN, i1 = 0;
      collectGarbage();
      const b = await startNodeBalloonVM({
        memoryMiB: 512,
        imageDir: IMAGE_DIR,
        cmdlineExtra: cmdlines[v],
        balloon: { features: QUIET, initialTarget: PAGES, floor: "off" },
        onAttached: ({ host, adapter }) => {
          host.on("inflate", () => {
            if (Number.isNaN(start)) [start, i0] = [performance.now(), adapter.instructionCounter()];
          });
          host.on("actual", (e) => {
            if (e.pages === PAGES && Number.isNaN(end)) [end, i1] = [performance.now(), adapter.instructionCounter()];
          });
        },
      });
      try {
        await msUntil(() => !Number.isNaN(end));
        // Everything the allocator zeroed since boot: the balloon's pages are the difference between variants.
        g.samples.push({ ms: end - start, instructions: instructionsSince(i0, i1), zeroed: await zeroedPages(b) });
      } finally {
        await b.vm.destroy();
      }
    }
  }
  return groups;
}

/**
 * One round on `g` with every other guest paused, so idle guests do not share the CPU; a garbage
 * collection first, and a moment for `g` to catch up on the timers that fired while it was paused.
 */
async function measureAlone(s: Scenario, g: Guest, all: Guest[]): Promise<Sample> {
  const others = all.filter((o) => o !== g);
  await Promise.all(others.map((o) => o.b.vm.pause()));
  try {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 100));
    return await s.round(g.b);
  } finally {
    await Promise.all(others.map((o) => o.b.vm.resume()));
  }
}

async function runScenario(s: Scenario): Promise<Guest[]> {
  const setups: Record<Variant, VariantSetup> = {
    ...s.variants,
    no_init_feature: { cmdline: s.variants.no_init.cmdline, features: s.variants.with.features },
  };
  const guests: Guest[] = [];
  try {
    for (let i = 0; i < GUESTS; i++) {
      for (const variant of VARIANTS) {
        const b = await startNodeBalloonVM({
          memoryMiB: s.memoryMiB,
          imageDir: IMAGE_DIR,
          cmdlineExtra: setups[variant].cmdline,
          // The scenarios take the balloon past what the host API's "auto" floor allows by design.
          balloon: { features: setups[variant].features, floor: "off" },
        });
        if (RESIDENT) makeResident(b);
        guests.push({ variant, b, samples: [] });
      }
    }
    for (const g of guests) await measureAlone(s, g, guests); // JIT warm-up
    for (let r = 0; r < (ROUNDS ?? s.rounds); r++) {
      // Rotate who goes first, so drift on a shared machine spreads over all guests.
      for (let k = 0; k < guests.length; k++) {
        const g = guests[(k + r) % guests.length];
        g.samples.push(await measureAlone(s, g, guests));
      }
    }
    return guests;
  } finally {
    for (const g of guests) await g.b.vm.destroy();
  }
}

type Measure = "ms" | "instructions" | "zeroed";

/** Median over all samples of a variant, and the largest gap between two of its groups' medians. */
function summarise(groups: Group[], v: Variant, k: Measure): { median: number; spread: number } | undefined {
  const mine = groups.filter((g) => g.variant === v);
  const values = (g: Group) => g.samples.map((x) => x[k]).filter((x): x is number => x !== undefined);
  const all = mine.flatMap(values);
  if (!all.length) return undefined;
  const perGuest = mine.map((g) => median(values(g)));
  return { median: median(all), spread: Math.max(...perGuest) - Math.min(...perGuest) };
}

const SUFFIX: Record<Measure, string> = { ms: "ms", instructions: "minstr", zeroed: "zeroed_pages" };

/** (with - no_init) / (without - no_init) of the variants' medians. */
function timeShare(ms: Record<"with" | "without" | "no_init", number[]>): number {
  const m = median(ms.no_init);
  return (median(ms.with) - m) / (median(ms.without) - m);
}

/** 90 % bootstrap interval of timeShare: each variant's samples resampled with replacement. */
function timeShareInterval(ms: Record<"with" | "without" | "no_init", number[]>): [number, number] {
  const next = rng(0x5eed);
  const resample = (xs: number[]) => xs.map(() => xs[Math.floor(next() * xs.length)]!);
  const shares: number[] = [];
  for (let i = 0; i < BOOTSTRAP; i++) {
    shares.push(timeShare({ with: resample(ms.with), without: resample(ms.without), no_init: resample(ms.no_init) }));
  }
  shares.sort((a, b) => a - b);
  return [shares[Math.floor(0.05 * BOOTSTRAP)]!, shares[Math.floor(0.95 * BOOTSTRAP)]!];
}

type Summary = Record<Measure, Partial<Record<Variant, { median: number; spread: number }>>>;

/**
 * The figures every scenario has: per-variant medians, the with/without ratio and the page share
 * (zeroed pages above `zBaseline`, with over without). Returns the summary and the table row's start.
 */
function commonFigures(figures: Record<string, number>, name: string, groups: Group[], baseline: Scenario["baseline"]): { at: Summary; row: string } {
  const key = `devinit.${name}`;
  const at = {} as Summary;
  for (const k of Object.keys(SUFFIX) as Measure[]) {
    at[k] = {};
    for (const v of VARIANTS) {
      const r = summarise(groups, v, k);
      if (!r) continue;
      at[k][v] = r;
      figures[`${key}_${v}_${SUFFIX[k]}`] = k === "instructions" ? r.median / 1e6 : r.median;
    }
  }
  const ms = (v: Variant) => at.ms[v]!.median;
  const z = (v: Variant) => at.zeroed[v]!.median;
  figures[`${key}_ratio`] = ms("with") / ms("without");
  const zBase = baseline === "no_init" ? z("no_init") : 0;
  figures[`devinit.zeroing_left_${name}_pages`] = (z("with") - zBase) / (z("without") - zBase);
  const row =
    `${name.padEnd(24)} with ${ms("with").toFixed(0).padStart(5)} ms  without ${ms("without").toFixed(0).padStart(5)} ms` +
    `  no_init ${ms("no_init").toFixed(0).padStart(5)} ms  ratio ${figures[`${key}_ratio`]!.toFixed(2)}` +
    `  zeroed pages with/without/no_init ${z("with")}/${z("without")}/${z("no_init")}` +
    `  (zeroing left, pages ${figures[`devinit.zeroing_left_${name}_pages`]!.toFixed(4)})`;
  return { at, row };
}

export async function run(): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  const rows: string[] = [];
  for (const s of SCENARIOS.filter((x) => !ONLY || ONLY.includes(x.name))) {
    const guests = await runScenario(s);
    const key = `devinit.${s.name}`;
    const { at, row } = commonFigures(figures, s.name, guests, s.baseline);
    const ms = (v: Variant) => at.ms[v]!.median;
    // How far apart the medians of identically configured guests are (sampling noise included).
    const spread = Math.max(...VARIANTS.map((v) => at.ms[v]!.spread));
    figures[`${key}_guest_spread_ms`] = spread;
    let timeRow = "";
    if (s.baseline === "no_init") {
      // Where no_init zeroes as much as without (populate), none of these means anything.
      figures[`${key}_feature_overhead_ms`] = ms("no_init_feature") - ms("no_init");
      figures[`${key}_avoidable_ms`] = ms("without") - ms("no_init");
      const samples = (v: Variant) => guests.filter((g) => g.variant === v).flatMap((g) => g.samples.map((x) => x.ms));
      const ms3 = { with: samples("with"), without: samples("without"), no_init: samples("no_init") };
      const share = timeShare(ms3);
      const [low, high] = timeShareInterval(ms3);
      figures[`devinit.zeroing_left_${s.name}`] = share;
      figures[`devinit.zeroing_left_${s.name}_ci_low`] = low;
      figures[`devinit.zeroing_left_${s.name}_ci_high`] = high;
      timeRow = `  zeroing left ${share.toFixed(2)} [90 % ${low.toFixed(2)}, ${high.toFixed(2)}]`;
    }
    rows.push(`${row}  guest spread ${spread.toFixed(0)} ms${timeRow}`);
  }
  if (!ONLY || ONLY.includes("boot_balloon_down")) {
    // Counted since boot: includes init_on_alloc's zeroing of the boot's own allocations, which no balloon avoids.
    rows.push(commonFigures(figures, "boot_balloon_down", await bootBalloonDown(ROUNDS ?? 6), "no_init").row);
  }
  console.log(rows.join("\n"));
  console.log(`anchor: ${QEMU_ANCHOR}`);
  console.log(
    "why v86 differs: a guest memset runs at ~2.5 GB/s here while an emulated page fault costs 6-45 us/page, " +
      "so zeroing is a smaller share of each page's cost than under KVM/TCG-with-fast-faults.",
  );
  // The issue names one populate share: the worse of the two populate scenarios.
  const populateShares = ["after_deflate", "after_report"]
    .map((p) => figures[`devinit.zeroing_left_populate_${p}_pages`])
    .filter((x) => x !== undefined);
  if (populateShares.length) figures["devinit.zeroing_left_populate"] = Math.max(...populateShares);
  return figures;
}

/**
 * Guest inflate of 256 MiB (target set -> `actual` reached) in a 512 MiB guest: our device, which
 * zeroes every page, vs v86's built-in balloon, which only counts PFNs. Both VMs live side by side;
 * rounds alternate after a warm-up round each. Same offered features for both (STATS_VQ, FREE_PAGE_HINT).
 * Two cases: as is (pages the balloon takes again were zeroed by our device in an earlier round, and
 * our hot path does not rewrite a page that already holds zeros), and "dirty": before each round the
 * guest writes and frees 300 MiB, so every page our device takes must really be written.
 * Then PROFILED_ROUNDS more dirty rounds of ours with every device phase timed (bench/device-profile.ts):
 * `inflate256.dirty_prof_*` is where the host time of a dirty 256 MiB inflate goes (medians).
 */
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import type { FeatureOffer } from "../src/balloon/features.js";
import { loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { startVM, type VM } from "../src/vm.js";
import { V86Adapter } from "../src/v86/adapter.js";
import { instructionsSince, median, msUntil } from "./support.js";
import { phaseFigures, profileDevice, type Phases } from "./device-profile.js";

const PAGES = 256 * 256;

/** Our device offering what v86's built-in balloon offers (STATS_VQ, FREE_PAGE_HINT), for side-by-side runs. */
export const BUILTIN_FEATURES: FeatureOffer = {
  MUST_TELL_HOST: false, DEFLATE_ON_OOM: false, PAGE_POISON: false, PAGE_REPORTING: false,
  DEVICE_INIT_REPORTED: false, DEVICE_INIT_ON_INFLATE: false,
};
const ROUNDS = 7;
const PROFILED_ROUNDS = 3;

interface Subject {
  vm: VM;
  setTarget(pages: number): void;
  actual(): number;
  instructions(): number;
}

async function inflateOnce(s: Subject, dirty: boolean): Promise<{ ms: number; instructions: number }> {
  if (dirty) await s.vm.run("memtouch 300", { timeoutMs: 120000 });
  const i0 = s.instructions();
  s.setTarget(PAGES);
  const ms = await msUntil(() => s.actual() === PAGES);
  const instructions = instructionsSince(i0, s.instructions());
  s.setTarget(0);
  await msUntil(() => s.actual() === 0);
  return { ms, instructions };
}

export async function run(): Promise<Record<string, number>> {
  const ours = await startNodeBalloonVM({
    memoryMiB: 512,
    balloon: {
      features: BUILTIN_FEATURES,
    },
  });
  let builtinAdapter: V86Adapter | undefined;
  const builtinVM = await startVM(loadGuestImages(), v86WasmPath(), {
    memoryMiB: 512,
    builtinBalloon: true,
    onReady: (e) => {
      builtinAdapter = new V86Adapter(e);
    },
  });
  const builtin = builtinAdapter!.builtinBalloon()!;
  const subjects: Record<"ours" | "builtin", Subject> = {
    ours: { vm: ours.vm, setTarget: (p) => ours.host.setTarget(p), actual: () => ours.host.actual, instructions: () => ours.adapter.instructionCounter() },
    builtin: { vm: builtinVM, setTarget: (p) => builtin.setTarget(p), actual: () => builtin.actual, instructions: () => builtinAdapter!.instructionCounter() },
  };
  const cases = { clean: false, dirty: true };
  const times = { clean: { ours: [] as number[], builtin: [] as number[] }, dirty: { ours: [] as number[], builtin: [] as number[] } };
  const instr = { ours: [] as number[], builtin: [] as number[] };
  const profiled: (Phases & { wallMs: number })[] = [];
  try {
    for (const name of ["ours", "builtin"] as const) await inflateOnce(subjects[name], false); // JIT warm-up
    for (const [c, dirty] of Object.entries(cases) as ["clean" | "dirty", boolean][]) {
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 ? (["builtin", "ours"] as const) : (["ours", "builtin"] as const);
        for (const name of order) {
          const { ms, instructions } = await inflateOnce(subjects[name], dirty);
          times[c][name].push(ms);
          if (!dirty) instr[name].push(instructions);
        }
      }
    }
    const profiler = await profileDevice(ours);
    for (let r = 0; r < PROFILED_ROUNDS; r++) {
      await ours.vm.run("memtouch 300", { timeoutMs: 120000 });
      profiler.reset();
      ours.host.setTarget(PAGES);
      const wallMs = await msUntil(() => ours.host.actual === PAGES);
      profiled.push({ wallMs, ...profiler.read() });
      ours.host.setTarget(0);
      await msUntil(() => ours.host.actual === 0);
    }
  } finally {
    await ours.vm.destroy();
    await builtinVM.destroy();
  }
  const oursMs = median(times.clean.ours);
  const builtinMs = median(times.clean.builtin);
  const dirtyOurs = median(times.dirty.ours);
  const dirtyBuiltin = median(times.dirty.builtin);
  return {
    "inflate256.ours_ms": oursMs,
    "inflate256.builtin_ms": builtinMs,
    "inflate256.ratio_vs_builtin": oursMs / builtinMs,
    "inflate256.dirty_ours_ms": dirtyOurs,
    "inflate256.dirty_builtin_ms": dirtyBuiltin,
    "inflate256.dirty_ratio_vs_builtin": dirtyOurs / dirtyBuiltin,
    "inflate256.ours_guest_minstr": median(instr.ours) / 1e6,
    ...phaseFigures("inflate256.dirty_prof_", profiled),
    "inflate256.builtin_guest_minstr": median(instr.builtin) / 1e6,
  };
}

/**
 * Guest inflate of 256 MiB (target set -> `actual` reached) in a 512 MiB guest: our device, which
 * zeroes every page, vs v86's built-in balloon, which only counts PFNs. Both VMs live side by side;
 * rounds alternate after a warm-up round each. Same offered features for both (STATS_VQ, FREE_PAGE_HINT).
 */
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import { loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { startVM } from "../src/vm.js";
import { V86Adapter } from "../src/v86/adapter.js";
import { instructionsSince, median, msUntil } from "./support.js";

const PAGES = 256 * 256;
const ROUNDS = 5;

interface Subject {
  setTarget(pages: number): void;
  actual(): number;
  instructions(): number;
}

async function inflateOnce(s: Subject): Promise<{ ms: number; instructions: number }> {
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
      features: {
        MUST_TELL_HOST: false, DEFLATE_ON_OOM: false, PAGE_POISON: false, PAGE_REPORTING: false,
        DEVICE_INIT_REPORTED: false, DEVICE_INIT_ON_INFLATE: false,
      },
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
    ours: { setTarget: (p) => ours.host.setTarget(p), actual: () => ours.host.actual, instructions: () => ours.adapter.instructionCounter() },
    builtin: { setTarget: (p) => builtin.setTarget(p), actual: () => builtin.actual, instructions: () => builtinAdapter!.instructionCounter() },
  };
  const times = { ours: [] as number[], builtin: [] as number[] };
  const instr = { ours: [] as number[], builtin: [] as number[] };
  try {
    for (const name of ["ours", "builtin"] as const) await inflateOnce(subjects[name]); // JIT warm-up
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? (["builtin", "ours"] as const) : (["ours", "builtin"] as const);
      for (const name of order) {
        const { ms, instructions } = await inflateOnce(subjects[name]);
        times[name].push(ms);
        instr[name].push(instructions);
      }
    }
  } finally {
    await ours.vm.destroy();
    await builtinVM.destroy();
  }
  const oursMs = median(times.ours);
  const builtinMs = median(times.builtin);
  return {
    "inflate256.ours_ms": oursMs,
    "inflate256.builtin_ms": builtinMs,
    "inflate256.ratio_vs_builtin": oursMs / builtinMs,
    "inflate256.ours_guest_minstr": median(instr.ours) / 1e6,
    "inflate256.builtin_guest_minstr": median(instr.builtin) / 1e6,
  };
}

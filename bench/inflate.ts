/**
 * The balloon as a user meets it, our device only (v86's built-in one is in the inflate256 group).
 *
 * Cold: COLD_VMS fresh 256 MiB guests, each inflating 64 MiB three times (deflating back in between),
 * with every device phase timed (bench/device-profile.ts) and guest instructions counted: where the first
 * inflate's time goes, and `inflate.first_vs_warm_64m` = first / third (median over the VMs). Nothing is
 * inflated at boot: the first inflate measured is the first the guest ever does. The same three inflates
 * on as many fresh guests with v86's built-in balloon (which only counts PFNs) give
 * `inflate.builtin_first_vs_warm_64m`: what the guest and v86 alone cost the first time; and our device
 * offering only what the built-in one offers (`inflate.samefeat_*`): the same driver work as with it.
 *
 * Growth: one guest with GROWTH_MIB of RAM (the committed kernel has no HIGHMEM, so Linux uses ~890 MiB
 * of it) inflates 64, 128, 256 and 512 MiB and deflates back, GROWTH_ROUNDS rounds in rotating order
 * after one warm-up inflate of the largest size; per-page host time, medians, and
 * `inflate.growth_512_vs_64` / `deflate.growth_512_vs_64` = per-page(512) / per-page(64).
 */
import { startNodeBalloonVM, type BalloonVM } from "../src/node/balloon-vm-node.js";
import { loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { V86Adapter } from "../src/v86/adapter.js";
import { startVM } from "../src/vm.js";
import { guestMs, phaseFigures, profileDevice, type Phases } from "./device-profile.js";
import { instructionsSince, median, msUntil } from "./support.js";
import { BUILTIN_FEATURES } from "./inflate256.js";
import type { FeatureOffer } from "../src/balloon/features.js";

const PAGES_PER_MIB = 256;
const COLD_VMS = Number(process.env.INFLATE_COLD_VMS ?? 3);
const COLD_MIB = 64;
const GROWTH_MIB = 1024;
const GROWTH_SIZES = [64, 128, 256, 512];
const GROWTH_ROUNDS = Number(process.env.INFLATE_GROWTH_ROUNDS ?? 5);

type Round = Phases & { wallMs: number; instructions: number };

interface Balloon {
  setTarget(pages: number): void;
  readonly actual: number;
}

/** Time setTarget(pages) until `actual` reaches it. */
async function balloonTo(b: Balloon, adapter: V86Adapter, pages: number): Promise<{ ms: number; instructions: number }> {
  const i0 = adapter.instructionCounter();
  b.setTarget(pages);
  const ms = await msUntil(() => b.actual === pages);
  return { ms, instructions: instructionsSince(i0, adapter.instructionCounter()) };
}

const ours = (b: BalloonVM): Balloon => ({ setTarget: (p) => b.host.setTarget(p), get actual() { return b.host.actual; } });

async function coldBuiltinVM(): Promise<{ wallMs: number; instructions: number }[]> {
  let adapter: V86Adapter | undefined;
  const vm = await startVM(loadGuestImages(), v86WasmPath(), { memoryMiB: 256, builtinBalloon: true, onReady: (e) => { adapter = new V86Adapter(e); } });
  try {
    const b = adapter!.builtinBalloon()!;
    const rounds = [];
    for (let i = 0; i < 3; i++) {
      const { ms, instructions } = await balloonTo(b, adapter!, COLD_MIB * PAGES_PER_MIB);
      rounds.push({ wallMs: ms, instructions });
      await balloonTo(b, adapter!, 0);
    }
    return rounds;
  } finally {
    await vm.destroy();
  }
}

async function coldVM(features?: FeatureOffer): Promise<Round[]> {
  const b = await startNodeBalloonVM({ memoryMiB: 256, balloon: { features } });
  try {
    const profiler = await profileDevice(b);
    const rounds: Round[] = [];
    for (let i = 0; i < 3; i++) {
      profiler.reset();
      const { ms, instructions } = await balloonTo(ours(b), b.adapter, COLD_MIB * PAGES_PER_MIB);
      rounds.push({ wallMs: ms, instructions, ...profiler.read() });
      await balloonTo(ours(b), b.adapter, 0);
    }
    return rounds;
  } finally {
    await b.vm.destroy();
  }
}

async function growth(): Promise<Record<string, number>> {
  const b = await startNodeBalloonVM({ memoryMiB: GROWTH_MIB });
  let memTotalKiB = 0;
  const inflateUs: Record<number, number[]> = {};
  const deflateUs: Record<number, number[]> = {};
  try {
    // What Linux made of the RAM (lowmem only: no HIGHMEM in the committed kernel).
    memTotalKiB = Number(/MemTotal:\s+(\d+)/.exec(await b.vm.run("grep MemTotal /proc/meminfo"))?.[1] ?? 0);
    const largest = Math.max(...GROWTH_SIZES) * PAGES_PER_MIB;
    const balloon = ours(b);
    await balloonTo(balloon, b.adapter, largest); // warm-up: JIT, and the pages taken later are already zero
    await balloonTo(balloon, b.adapter, 0);
    for (let r = 0; r < GROWTH_ROUNDS; r++) {
      for (let k = 0; k < GROWTH_SIZES.length; k++) {
        const mib = GROWTH_SIZES[(k + r) % GROWTH_SIZES.length]!;
        const pages = mib * PAGES_PER_MIB;
        const up = await balloonTo(balloon, b.adapter, pages);
        const down = await balloonTo(balloon, b.adapter, 0);
        (inflateUs[mib] ??= []).push((up.ms * 1000) / pages);
        (deflateUs[mib] ??= []).push((down.ms * 1000) / pages);
      }
    }
  } finally {
    await b.vm.destroy();
  }
  const out: Record<string, number> = {};
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  for (const [name, us] of [["inflate", inflateUs], ["deflate", deflateUs]] as const) {
    for (const mib of GROWTH_SIZES) out[`${name}.per_page_us_${mib}m`] = round3(median(us[mib]!));
    out[`${name}.growth_512_vs_64`] = round3(median(us[512]!) / median(us[64]!));
  }
  out["inflate.growth_guest_mib"] = GROWTH_MIB;
  out["inflate.growth_guest_memtotal_mib"] = Math.round(memTotalKiB / 1024);
  return out;
}

export async function run(): Promise<Record<string, number>> {
  const vms: Round[][] = [];
  const builtinVms: { wallMs: number; instructions: number }[][] = [];
  const sameFeatVms: Round[][] = [];
  for (let v = 0; v < COLD_VMS; v++) {
    vms.push(await coldVM());
    builtinVms.push(await coldBuiltinVM());
    sameFeatVms.push(await coldVM(BUILTIN_FEATURES));
  }
  const nth = (i: number) => vms.map((rounds) => rounds[i]!);
  const firstVsThird = (rounds: { wallMs: number }[][]) => Math.round(median(rounds.map((r) => r[0]!.wallMs / r[2]!.wallMs)) * 100) / 100;
  const minstr = (i: number) => Math.round(median(nth(i).map((r) => r.instructions)) / 1e4) / 100;
  return {
    "inflate.first_vs_warm_64m": firstVsThird(vms),
    "inflate.builtin_first_vs_warm_64m": firstVsThird(builtinVms),
    "inflate.builtin_first_64m_ms": Math.round(median(builtinVms.map((r) => r[0]!.wallMs))),
    "inflate.builtin_third_64m_ms": Math.round(median(builtinVms.map((r) => r[2]!.wallMs))),
    "inflate.samefeat_first_vs_warm_64m": firstVsThird(sameFeatVms),
    "inflate.samefeat_first_64m_ms": Math.round(median(sameFeatVms.map((r) => r[0]!.wallMs))),
    "inflate.samefeat_third_64m_ms": Math.round(median(sameFeatVms.map((r) => r[2]!.wallMs))),
    "inflate.samefeat_first_device_ms": Math.round(median(sameFeatVms.map((r) => r[0]!.deviceMs + r[0]!.irqOutsideMs))),
    "inflate.builtin_first_guest_minstr_64m": Math.round(median(builtinVms.map((r) => r[0]!.instructions)) / 1e4) / 100,
    "inflate.first_guest_minstr_64m": minstr(0),
    "inflate.third_guest_minstr_64m": minstr(2),
    // Host time per guest instruction: the same instructions, run cold (v86 interprets) and warm (compiled).
    "inflate.first_guest_ns_per_instr": Math.round(median(nth(0).map((r) => (guestMs(r) * 1e6) / r.instructions)) * 10) / 10,
    "inflate.third_guest_ns_per_instr": Math.round(median(nth(2).map((r) => (guestMs(r) * 1e6) / r.instructions)) * 10) / 10,
    ...phaseFigures("inflate.first_64m_", nth(0)),
    ...phaseFigures("inflate.second_64m_", nth(1)),
    ...phaseFigures("inflate.third_64m_", nth(2)),
    ...(await growth()),
  };
}

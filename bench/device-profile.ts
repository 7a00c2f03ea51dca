/**
 * Where an attached balloon's host time goes, for the inflate benchmarks: every hot-path call, the
 * JIT invalidation (v86's jit_dirty_cache, called by the hot path), the interrupt line and the whole
 * notify are timed with performance.now(). The hot path is re-instantiated with a timed `dirty` import
 * (a JS hop per coalesced run instead of a direct wasm-to-wasm call) and its methods replace the
 * device's: the figures are for profiled rounds only, never mixed into the ratios.
 */
import type { AttachedBalloon } from "../src/host/attach.js";
import { loadHotPath, type HotPath } from "../src/hotpath/hotpath.js";
import { median } from "./support.js";

export interface Phases {
  /** device.notify, everything the device does for a kick (includes the phases below but irqOutside). */
  deviceMs: number;
  walkMs: number;
  /** fillPfns / unmarkPfns: PFN loop, zero check and fill, excluding jitMs. */
  checkFillMs: number;
  /** v86's jit_dirty_cache for the pages written. */
  jitMs: number;
  usedMs: number;
  /** raise/lower of the INTx line (lowering happens on the guest's ISR read, outside notify). */
  irqMs: number;
  irqOutsideMs: number;
  notifies: number;
  dirtyCalls: number;
  dirtyPages: number;
}

const zero = (): Phases => ({ deviceMs: 0, walkMs: 0, checkFillMs: 0, jitMs: 0, usedMs: 0, irqMs: 0, irqOutsideMs: 0, notifies: 0, dirtyCalls: 0, dirtyPages: 0 });

export interface Profiler {
  /** Phases since the last reset. */
  read(): Phases;
  reset(): void;
}

export async function profileDevice(b: AttachedBalloon): Promise<Profiler> {
  let p = zero();
  let inNotify = false;
  const now = () => performance.now();
  const v86Dirty = b.adapter.memory.dirty;
  const profiled = await loadHotPath(b.adapter.memory, {
    dirtyImport: (s, e) => {
      const t = now();
      v86Dirty(s, e);
      p.jitMs += now() - t;
      p.dirtyCalls++;
      p.dirtyPages += ((e - 1) >>> 12) - (s >>> 12) + 1;
    },
  });
  const hot = b.device.hot as { -readonly [K in keyof HotPath]: HotPath[K] };
  const timed = <A extends unknown[], R>(f: (...a: A) => R, add: (ms: number) => void) => (...a: A): R => {
    const t = now();
    try {
      return f(...a);
    } finally {
      add(now() - t);
    }
  };
  hot.walkChain = timed(profiled.walkChain, (ms) => (p.walkMs += ms));
  hot.pushUsed = timed(profiled.pushUsed, (ms) => (p.usedMs += ms));
  const jitAround = <A extends unknown[], R>(f: (...a: A) => R) => (...a: A): R => {
    const j0 = p.jitMs;
    const t = now();
    try {
      return f(...a);
    } finally {
      p.checkFillMs += now() - t - (p.jitMs - j0);
    }
  };
  hot.fillPfns = jitAround(profiled.fillPfns);
  hot.unmarkPfns = jitAround(profiled.unmarkPfns);
  hot.fillRange = jitAround(profiled.fillRange);

  const device = b.device;
  const notify = device.notify.bind(device);
  device.notify = (index: number) => {
    inNotify = true;
    p.notifies++;
    const t = now();
    try {
      notify(index);
    } finally {
      p.deviceMs += now() - t;
      inNotify = false;
    }
  };
  const irq = (f: (id: number) => void) => (id: number) => {
    const t = now();
    f(id);
    const ms = now() - t;
    p.irqMs += ms;
    if (!inNotify) p.irqOutsideMs += ms;
  };
  b.adapter.raiseIrq = irq(b.adapter.raiseIrq.bind(b.adapter));
  b.adapter.lowerIrq = irq(b.adapter.lowerIrq.bind(b.adapter));
  return {
    read: () => ({ ...p }),
    reset: () => {
      p = zero();
    },
  };
}

/** Host time the guest had in a profiled step: wall time less everything the device did. */
export const guestMs = (r: Phases & { wallMs: number }) => r.wallMs - r.deviceMs - r.irqOutsideMs;

/** Medians of each phase over profiled rounds. */
export function phaseFigures(prefix: string, rounds: (Phases & { wallMs: number })[]): Record<string, number> {
  const m = (f: (r: Phases & { wallMs: number }) => number) => Math.round(median(rounds.map(f)) * 100) / 100;
  return {
    [`${prefix}wall_ms`]: m((r) => r.wallMs),
    [`${prefix}guest_ms`]: m(guestMs),
    [`${prefix}device_ms`]: m((r) => r.deviceMs + r.irqOutsideMs),
    [`${prefix}walk_ms`]: m((r) => r.walkMs),
    [`${prefix}check_fill_ms`]: m((r) => r.checkFillMs),
    [`${prefix}jit_ms`]: m((r) => r.jitMs),
    [`${prefix}used_ms`]: m((r) => r.usedMs),
    [`${prefix}irq_ms`]: m((r) => r.irqMs),
    [`${prefix}device_other_ms`]: m((r) => r.deviceMs + r.irqOutsideMs - r.walkMs - r.checkFillMs - r.jitMs - r.usedMs - r.irqMs),
    [`${prefix}notifies`]: m((r) => r.notifies),
    [`${prefix}jit_calls`]: m((r) => r.dirtyCalls),
    [`${prefix}jit_pages`]: m((r) => r.dirtyPages),
  };
}

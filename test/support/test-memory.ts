import { createWasmGuestMemory, type WasmGuestMemory } from "../../src/memory/wasm-memory.js";

/**
 * The test double of guest memory: src/memory/wasm-memory.ts's layout with canaries in the areas before
 * and after RAM (they stand for v86's own state), so a test can prove the device wrote nothing outside.
 *
 * Every dirty() call is recorded (`dirtyRanges`), and calls outside [0, size) or empty are recorded in
 * `badDirty`. `guardsIntact()` proves nothing was written outside guest RAM (and scratch).
 */
export interface TestMemory extends WasmGuestMemory {
  /** Every dirty(start, end) call, in order. */
  readonly dirtyRanges: Array<[number, number]>;
  /** dirty() calls with start >= end, start < 0 or end > size. */
  readonly badDirty: Array<[number, number]>;
  clearDirty(): void;
  /** True iff every byte of guest-physical [start, end) is covered by some recorded dirty range. */
  dirtyCovers(start: number, end: number): boolean;
  /** True iff both guard areas still hold the canary pattern. */
  guardsIntact(): boolean;
  /** Description of the first damaged guard byte, or null. */
  guardDamage(): string | null;
}

export interface TestMemoryOptions {
  /** Offset of guest-physical 0 in the memory (default 64 KiB; any multiple of 8). */
  base?: number;
  /** Guard bytes after RAM (default 64 KiB). */
  guardAfter?: number;
  /** Scratch bytes after the guard (default 1 MiB). */
  scratch?: number;
  /** Byte every RAM page starts with (default 0). */
  initialFill?: number;
}

function canary(i: number): number {
  return (i * 131 + 0x5b) & 0xff;
}

export function createTestMemory(ramBytes: number, opts: TestMemoryOptions = {}): TestMemory {
  const guardAfter = opts.guardAfter ?? 65536;
  const dirtyRanges: Array<[number, number]> = [];
  const badDirty: Array<[number, number]> = [];
  const wm = createWasmGuestMemory(ramBytes, {
    base: opts.base ?? 65536,
    gapAfter: guardAfter,
    scratch: opts.scratch ?? 1 << 20,
    dirty(start, end) {
      dirtyRanges.push([start, end]);
      if (!(start >= 0 && end <= ramBytes && start < end)) badDirty.push([start, end]);
    },
  });
  const base = wm.base;
  const u8 = () => new Uint8Array(wm.memory.buffer);
  {
    const all = u8();
    for (let i = 0; i < base; i++) all[i] = canary(i);
    for (let i = base + ramBytes; i < base + ramBytes + guardAfter; i++) all[i] = canary(i);
    if (opts.initialFill) all.fill(opts.initialFill, base, base + ramBytes);
  }

  const guardDamage = (): string | null => {
    const all = u8();
    for (let i = 0; i < base; i++) if (all[i] !== canary(i)) return `guard before RAM damaged at absolute ${i}`;
    for (let i = base + ramBytes; i < base + ramBytes + guardAfter; i++) {
      if (all[i] !== canary(i)) return `guard after RAM damaged at guest-physical ${i - base}`;
    }
    return null;
  };

  return Object.assign(wm, {
    dirtyRanges,
    badDirty,
    clearDirty() {
      dirtyRanges.length = 0;
      badDirty.length = 0;
    },
    dirtyCovers(start: number, end: number) {
      if (start >= end) return true;
      const sorted = dirtyRanges.filter(([s, e]) => e > start && s < end).sort((a, b) => a[0] - b[0]);
      let pos = start;
      for (const [s, e] of sorted) {
        if (s > pos) return false;
        if (e > pos) pos = e;
        if (pos >= end) return true;
      }
      return pos >= end;
    },
    guardsIntact() {
      return guardDamage() === null;
    },
    guardDamage,
  });
}

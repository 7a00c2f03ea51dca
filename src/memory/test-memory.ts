import type { GuestMemory } from "./guest-memory.js";

/**
 * A GuestMemory for tests and benchmarks: a fresh WebAssembly.Memory laid out like v86's
 *
 *   [0, base)                      guard (canary)   -- stands for v86's own state before RAM
 *   [base, base + size)            guest RAM
 *   [base + size, + guardAfter)    guard (canary)   -- stands for v86's state after RAM
 *   [.., end)                      scratch (allocScratch bump allocator)
 *
 * Every dirty() call is recorded (`dirtyRanges`), and calls outside [0, size) or empty are recorded in
 * `badDirty`. `guardsIntact()` proves nothing was written outside guest RAM (and scratch).
 */
export interface TestMemory extends GuestMemory {
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
  /** Absolute offset where the scratch area starts / its size. */
  readonly scratchStart: number;
  readonly scratchBytes: number;
  /** Guest-physical helpers (DataView over RAM). */
  view(): DataView;
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

const PAGE = 65536;

function canary(i: number): number {
  return (i * 131 + 0x5b) & 0xff;
}

export function createTestMemory(ramBytes: number, opts: TestMemoryOptions = {}): TestMemory {
  const base = opts.base ?? 65536;
  const guardAfter = opts.guardAfter ?? 65536;
  const scratchBytes = opts.scratch ?? 1 << 20;
  if (ramBytes <= 0 || ramBytes % 4096 !== 0) throw new RangeError("ramBytes must be a positive multiple of 4096");
  if (base < 0 || base % 8 !== 0) throw new RangeError("base must be a non-negative multiple of 8");
  const scratchStart = Math.ceil((base + ramBytes + guardAfter) / 16) * 16;
  const total = scratchStart + scratchBytes;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(total / PAGE) });
  const u8 = () => new Uint8Array(memory.buffer);
  {
    const all = u8();
    for (let i = 0; i < base; i++) all[i] = canary(i);
    for (let i = base + ramBytes; i < base + ramBytes + guardAfter; i++) all[i] = canary(i);
    if (opts.initialFill) all.fill(opts.initialFill, base, base + ramBytes);
  }
  let next = scratchStart;
  const dirtyRanges: Array<[number, number]> = [];
  const badDirty: Array<[number, number]> = [];
  let bytesView: Uint8Array | null = null;

  const guardDamage = (): string | null => {
    const all = u8();
    for (let i = 0; i < base; i++) if (all[i] !== canary(i)) return `guard before RAM damaged at absolute ${i}`;
    for (let i = base + ramBytes; i < base + ramBytes + guardAfter; i++) {
      if (all[i] !== canary(i)) return `guard after RAM damaged at guest-physical ${i - base}`;
    }
    return null;
  };

  const mem: TestMemory = {
    memory,
    base,
    size: ramBytes,
    scratchStart,
    scratchBytes,
    bytes() {
      if (!bytesView || bytesView.buffer !== memory.buffer) bytesView = new Uint8Array(memory.buffer, base, ramBytes);
      return bytesView;
    },
    view() {
      return new DataView(memory.buffer, base, ramBytes);
    },
    dirty(start: number, end: number) {
      dirtyRanges.push([start, end]);
      if (!(start >= 0 && end <= ramBytes && start < end)) badDirty.push([start, end]);
    },
    allocScratch(bytes: number) {
      const p = next;
      next = Math.ceil((next + bytes) / 16) * 16;
      if (next > total) throw new RangeError(`test memory scratch exhausted (${bytes} bytes asked)`);
      return p;
    },
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
  };
  return mem;
}

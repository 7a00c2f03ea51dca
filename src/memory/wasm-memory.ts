import type { GuestMemory } from "./guest-memory.js";

/**
 * Guest RAM of its own, without an emulator: a fresh WebAssembly.Memory laid out like v86's,
 *
 *   [0, base)                        before RAM (v86: its own state)
 *   [base, base + size)              guest RAM
 *   [base + size, + gapAfter)        after RAM (v86: its own state)
 *   [scratchStart, + scratchBytes)   allocScratch's bump allocator
 *
 * For running the hot path and the device outside v86 (benchmarks, tests, the fuzz target).
 */
export interface WasmGuestMemory extends GuestMemory {
  readonly scratchStart: number;
  readonly scratchBytes: number;
  /** A DataView over guest RAM. */
  view(): DataView;
}

export interface WasmMemoryOptions {
  /** Offset of guest-physical 0 in the memory (default 64 KiB; a multiple of 8). */
  base?: number;
  /** Bytes between RAM and scratch (default 64 KiB). */
  gapAfter?: number;
  /** Scratch bytes (default 1 MiB). */
  scratch?: number;
  /** Called for every range the device writes (default: nothing to invalidate). */
  dirty?: (start: number, end: number) => void;
}

export function createWasmGuestMemory(ramBytes: number, opts: WasmMemoryOptions = {}): WasmGuestMemory {
  const base = opts.base ?? 65536;
  const gapAfter = opts.gapAfter ?? 65536;
  const scratchBytes = opts.scratch ?? 1 << 20;
  if (ramBytes <= 0 || ramBytes % 4096 !== 0) throw new RangeError("ramBytes must be a positive multiple of 4096");
  if (base < 0 || base % 8 !== 0) throw new RangeError("base must be a non-negative multiple of 8");
  const scratchStart = Math.ceil((base + ramBytes + gapAfter) / 16) * 16;
  const total = scratchStart + scratchBytes;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(total / 65536) });
  let next = scratchStart;
  let bytesView: Uint8Array | null = null;
  return {
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
    dirty: opts.dirty ?? (() => {}),
    allocScratch(bytes: number) {
      const p = next;
      next = Math.ceil((next + bytes) / 16) * 16;
      if (next > total) throw new RangeError(`guest memory scratch exhausted (${bytes} bytes asked)`);
      return p;
    },
  };
}

/**
 * Guest memory for the fuzzer: like test/support/test-memory.ts, but every scratch allocation is fenced by
 * canaries of its own (an overrun of one allocation into the next is caught, not only one past all of them),
 * guards are checked with one memcmp each (the fuzzer checks them after every request), and dirty() calls
 * are logged per request.
 *
 *   [0, base)                 canary
 *   [base, base + size)       guest RAM
 *   [.., + GUARD)             canary
 *   then per allocation:      [allocation][GUARD canary]
 */
import type { GuestMemory } from "../../src/memory/guest-memory.js";

const WASM_PAGE = 65536;
/** Canary bytes after RAM and after each scratch allocation. */
export const GUARD = 256;

function canaryByte(i: number): number {
  return (i * 167 + 0x3d) & 0xff;
}

export interface FuzzMemory extends GuestMemory {
  /** dirty(start, end) calls since the last takeDirty(). */
  takeDirty(): Array<[number, number]>;
  /** Description of the first damaged canary, or null. */
  guardDamage(): string | null;
  /** Scratch allocations made so far: absolute [start, end). */
  readonly allocations: ReadonlyArray<readonly [number, number]>;
}

interface Guard { at: number; len: number; what: string }

export function createFuzzMemory(ramBytes: number, opts: { base?: number; scratch?: number } = {}): FuzzMemory {
  const base = opts.base ?? 4096;
  const scratchBytes = opts.scratch ?? Math.max(1 << 20, ramBytes / 8 + (1 << 19));
  const ramEnd = base + ramBytes;
  const scratchStart = ramEnd + GUARD;
  const total = scratchStart + scratchBytes;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(total / WASM_PAGE) });
  const all = () => new Uint8Array(memory.buffer);
  const guards: Guard[] = [];
  const pattern = new Uint8Array(Math.max(base, GUARD));
  for (let i = 0; i < pattern.length; i++) pattern[i] = canaryByte(i);
  const fence = (at: number, len: number, what: string) => {
    all().set(pattern.subarray(0, len), at);
    guards.push({ at, len, what });
  };
  fence(0, base, "guard before RAM");
  fence(ramEnd, GUARD, "guard after RAM");
  let next = scratchStart;
  let dirtyLog: Array<[number, number]> = [];
  let view: Uint8Array | null = null;
  const allocations: Array<readonly [number, number]> = [];

  return {
    memory,
    base,
    size: ramBytes,
    allocations,
    bytes() {
      if (!view || view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer, base, ramBytes);
      return view;
    },
    dirty(start: number, end: number) {
      dirtyLog.push([start, end]);
    },
    allocScratch(bytes: number) {
      const p = Math.ceil(next / 16) * 16;
      const end = p + bytes;
      if (end + GUARD > total) throw new RangeError(`fuzz memory: scratch exhausted (${bytes} bytes asked)`);
      allocations.push([p, end]);
      fence(end, GUARD, `guard after scratch allocation #${allocations.length - 1} ([${p}, ${end}))`);
      next = end + GUARD;
      return p;
    },
    takeDirty() {
      const d = dirtyLog;
      dirtyLog = [];
      return d;
    },
    guardDamage() {
      const a = all();
      for (const g of guards) {
        if (Buffer.compare(a.subarray(g.at, g.at + g.len), pattern.subarray(0, g.len)) !== 0) {
          let i = 0;
          while (a[g.at + i] === pattern[i]) i++;
          return `${g.what} damaged at byte ${i}`;
        }
      }
      return null;
    },
  };
}

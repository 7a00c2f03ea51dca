/**
 * Guest RAM as the device sees it: one contiguous range of guest-physical addresses [0, size)
 * that lives at byte offset `base` inside a WebAssembly.Memory (v86's own, in place).
 *
 * Every layer above (hot path, virtqueue, balloon device) reaches guest RAM only through this.
 */
export interface GuestMemory {
  /** The WebAssembly.Memory that holds guest RAM (v86's; the hot path imports it). */
  readonly memory: WebAssembly.Memory;
  /** Byte offset of guest-physical address 0 inside `memory.buffer`. */
  readonly base: number;
  /** Guest RAM size in bytes (a multiple of 4096). */
  readonly size: number;
  /** A view of guest RAM; re-fetch after anything that may grow the memory (the view detaches). */
  bytes(): Uint8Array;
  /** Tell the emulator that the device wrote guest-physical [start, end) (JIT coherence). */
  dirty(start: number, end: number): void;
  /** Scratch bytes inside `memory` but outside guest RAM (v86: its own malloc); returns the absolute offset. */
  allocScratch(bytes: number): number;
}

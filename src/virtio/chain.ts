import type { WalkErrorKind } from "../hotpath/types.js";

/** A guest-physical buffer, checked to lie inside guest RAM. */
export interface Segment {
  addr: number;
  len: number;
}

/** One descriptor chain popped from the driver (avail) ring. */
export interface DescriptorChain {
  /** Head descriptor index: give it back with `Virtqueue.push(head, usedLen)`. */
  head: number;
  /** Device-readable segments, in chain order. */
  readable: Segment[];
  /** Device-writable segments, in chain order (all after the readable ones). */
  writable: Segment[];
  readableBytes: number;
  writableBytes: number;
}

/**
 * Why a chain (or the ring) is malformed.
 *  - walk kinds (see WALK_ERRORS in src/hotpath/types.ts): head-out-of-range, next-out-of-range, loop,
 *    segment-out-of-ram, zero-length, readable-after-writable, too-many-segments, bad-indirect-table,
 *    nested-indirect, indirect-with-next, indirect-not-negotiated, desc-table-out-of-ram
 *  - avail-idx-jump: the driver's avail idx moved more than Queue Size past the last one seen
 *    (2.7.6 virtio 1.2); no head is consumed (`head` = -1) — the ring is broken: set DEVICE_NEEDS_RESET.
 */
export type ChainErrorKind = WalkErrorKind | "avail-idx-jump";

export const CHAIN_ERROR_KINDS: readonly ChainErrorKind[] = [
  "head-out-of-range", "next-out-of-range", "loop", "segment-out-of-ram", "zero-length",
  "readable-after-writable", "too-many-segments", "bad-indirect-table", "nested-indirect",
  "indirect-with-next", "indirect-not-negotiated", "desc-table-out-of-ram", "avail-idx-jump",
];

export class ChainError extends Error {
  readonly kind: ChainErrorKind;
  /** The head descriptor index (consumed from the avail ring; return it used with len 0), or -1. */
  readonly head: number;
  /** Queue index, for diagnostics. */
  readonly queue: number;
  constructor(kind: ChainErrorKind, head: number, queue = -1, detail = "") {
    super(`virtqueue ${queue}: malformed descriptor chain (head ${head}): ${kind}${detail ? ` (${detail})` : ""}`);
    this.name = "ChainError";
    this.kind = kind;
    this.head = head;
    this.queue = queue;
  }
}

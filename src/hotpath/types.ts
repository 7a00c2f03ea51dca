/**
 * The hot path (descriptor-chain walk, PFN fill with run coalescing, range fill) as both the
 * AssemblyScript module (`loadHotPath`) and the plain-JS reference (`referenceHotPath`) expose it.
 * All addresses are guest-physical unless named `...Ptr` (absolute offsets into `mem.memory`, i.e. scratch).
 */

/** Bytes per segment record written by walkChain at outPtr: addr u32, len u32, flags u32 (WRITE = 2). */
export const SEGMENT_RECORD_BYTES = 12;

/** walkChain error codes (negative return values), one per chain error kind. */
export const WALK_ERRORS = {
  "head-out-of-range": -1,
  "next-out-of-range": -2,
  loop: -3,
  "segment-out-of-ram": -4,
  "zero-length": -5,
  "readable-after-writable": -6,
  "too-many-segments": -7,
  "bad-indirect-table": -8,
  "nested-indirect": -9,
  "indirect-with-next": -10,
  "indirect-not-negotiated": -11,
  "desc-table-out-of-ram": -12,
} as const;
export type WalkErrorKind = keyof typeof WALK_ERRORS;

export function walkErrorKind(code: number): WalkErrorKind {
  for (const [k, v] of Object.entries(WALK_ERRORS)) if (v === code) return k as WalkErrorKind;
  throw new RangeError(`unknown walk_chain code ${code}`);
}

/** fillPfns flags. */
export const FILL_LIE = 1; //          fault injection: set bits / count pages as filled without filling
export const FILL_SET_PADDING = 2; //  fault injection: set the padding bits of the last bitmap byte
export const FILL_NO_FILL = 4; //      accounting only (no fill, no bitmap bits)
export const FILL_BITMAP_GUEST = 8; // bitmapPtr is guest-physical (bounds-checked, dirtied), else absolute scratch

export interface FillResult {
  /** Pages filled (claimed filled with FILL_LIE; 0 with FILL_NO_FILL); -1 PFN list outside RAM, -2 guest bitmap outside RAM. */
  filled: number;
  /** PFNs >= size/4096 (skipped). */
  outOfRange: number;
  /** Index in the list of the first out-of-range PFN, -1 if none. */
  firstBadIndex: number;
  /** In-range PFNs whose track bit was already set (double inflate); 0 without a track bitmap. */
  alreadyInflated: number;
  /** Fill runs written (= dirty calls for pages): coalesced runs, split where pages already hold the fill byte. */
  runs: number;
  /** Pages actually written; pages that already held the fill byte are left untouched (never dirtied). */
  pagesWritten: number;
}

export interface UnmarkResult {
  /** PFNs whose track bit was set and is now clear; -1 PFN list outside RAM. */
  unmarked: number;
  outOfRange: number;
  firstBadIndex: number;
  /** In-range PFNs that were not marked (deflating pages never inflated). */
  notInflated: number;
}

export interface HotPath {
  readonly kind: "wasm" | "js";
  /**
   * Walk the descriptor chain at `head` of the split-ring descriptor table at `descAddr` (qsize entries).
   * Writes `SEGMENT_RECORD_BYTES` per segment at absolute `outPtr`; returns the count or a WALK_ERRORS code.
   */
  walkChain(descAddr: number, qsize: number, head: number, outPtr: number, maxSeg: number, allowIndirect: boolean): number;
  /**
   * Fill the 4 KiB pages whose le32 PFNs are at guest-physical `pfnAddr` (`count` of them) with byte `fill`,
   * coalescing runs; bitmap at `bitmapPtr` (0 = none; see FILL_BITMAP_GUEST); track bitmap at absolute
   * `trackPtr` (0 = none; 1 bit per guest page, ceil(size/4096/8) bytes).
   */
  fillPfns(pfnAddr: number, count: number, fill: number, bitmapPtr: number, flags: number, trackPtr?: number): FillResult;
  /** Clear the track bits of the PFNs at `pfnAddr` (deflate accounting). */
  unmarkPfns(pfnAddr: number, count: number, trackPtr: number): UnmarkResult;
  /** Fill guest-physical [addr, addr+len) + dirty; false on refusal (empty or outside RAM). */
  fillRange(addr: number, len: number, fill: number): boolean;
  /** Write used element {id, len} at slot usedIdx % qsize, then used.idx = usedIdx+1; returns the new idx or -1. */
  pushUsed(usedAddr: number, qsize: number, usedIdx: number, id: number, len: number): number;
}

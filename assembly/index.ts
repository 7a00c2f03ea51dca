// Balloon hot path, in place on guest RAM inside v86's own WebAssembly.Memory.
//
// Rules for this file (see docs/architecture.md and FACTS.md "AssemblyScript on v86's memory"):
// - NO static data (strings, array literals, StaticArray constants): they become a data segment that
//   would be written into v86's memory at instantiation. `scripts/check-wasm.mjs` rejects such a build.
// - NO start function, NO allocation (runtime "stub"), abort removed.
// - `base` is the absolute offset of guest-physical 0, `ramSize` the guest RAM size. Every value that the
//   guest controls is checked against `ramSize` here, in u64 arithmetic (no u32 wrap of addr + len):
//   wasm bounds checks only trap past the end of the whole memory, and v86's own state is writable.
// - Segment / bitmap / track output pointers (`outPtr`, `bitmapPtr` without FILL_BITMAP_GUEST,
//   `trackPtr`) are absolute host scratch pointers chosen by the caller, never guest values.

/** v86: jit_dirty_cache(startPA, endPA), end exclusive, guest-physical. */
@external("env", "dirty")
declare function dirty(start: u32, end: u32): void;

// ---- descriptor flags (virtio 1.2, 2.7.5) ----
const DESC_F_NEXT: u32 = 1;
const DESC_F_WRITE: u32 = 2;
const DESC_F_INDIRECT: u32 = 4;

// ---- walk_chain error codes, one per ChainErrorKind (src/virtio/chain.ts maps them) ----
const ERR_HEAD_OUT_OF_RANGE: i32 = -1;
const ERR_NEXT_OUT_OF_RANGE: i32 = -2;
const ERR_LOOP: i32 = -3;
const ERR_SEGMENT_OUT_OF_RAM: i32 = -4;
const ERR_ZERO_LENGTH: i32 = -5;
const ERR_READABLE_AFTER_WRITABLE: i32 = -6;
const ERR_TOO_MANY_SEGMENTS: i32 = -7;
const ERR_BAD_INDIRECT_TABLE: i32 = -8;
const ERR_NESTED_INDIRECT: i32 = -9;
const ERR_INDIRECT_WITH_NEXT: i32 = -10;
const ERR_INDIRECT_NOT_NEGOTIATED: i32 = -11;
const ERR_DESC_TABLE_OUT_OF_RAM: i32 = -12;

/** Bytes per segment record written at outPtr: addr u32, len u32, flags u32 (flags: the descriptor's, WRITE=2). */
const SEG_BYTES: u32 = 12;

/** True iff guest-physical [addr, addr+len) lies inside [0, ramSize), in u64 math (no wrap). */
@inline
function inRam(addr: u64, len: u64, ramSize: u32): bool {
  return addr <= <u64>ramSize && len <= <u64>ramSize - addr;
}

/**
 * Walk the split-virtqueue descriptor chain starting at `head`.
 * Writes one 12-byte record per buffer segment to `outPtr` (absolute) and returns the segment count,
 * or a negative ERR_* code. Loop-proof by counting: at most `qsize` descriptors in the main table and
 * at most len/16 in the (single) indirect table, and never more than `maxSeg` segments.
 * `allowIndirect` = VIRTIO_F_INDIRECT_DESC negotiated (0/1).
 */
export function walk_chain(
  base: u32, ramSize: u32, descAddr: u32, qsize: u32, head: u32,
  outPtr: u32, maxSeg: u32, allowIndirect: u32,
): i32 {
  // 2.7.5 virtio 1.2: the descriptor table (16 * Queue Size bytes) is in guest memory (re-checked here: guest-set).
  if (qsize == 0 || qsize > 32768 || !inRam(<u64>descAddr, <u64>qsize << 4, ramSize)) return ERR_DESC_TABLE_OUT_OF_RAM;
  // 2.7.6 virtio 1.2: ring entries are descriptor-table indices < Queue Size.
  if (head >= qsize) return ERR_HEAD_OUT_OF_RANGE;

  let table: u32 = descAddr;   // guest-physical address of the current table
  let entries: u32 = qsize;    // entries of the current table
  let idx: u32 = head;
  let visited: u32 = 0;        // descriptors visited in the current table
  let indirect = false;
  let seenWrite = false;
  let n: u32 = 0;
  let out: usize = <usize>outPtr;

  while (true) {
    // 2.7.5.2 / 2.7.5.3.1 virtio 1.2: no chain longer than Queue Size (indirect: than its table) => loops forbidden.
    visited++;
    if (visited > entries) return ERR_LOOP;
    const d: usize = <usize>base + <usize>table + (<usize>idx << 4);
    const addr = load<u64>(d);
    const len = load<u32>(d, 8);
    const flags = <u32>load<u16>(d, 12);
    const next = <u32>load<u16>(d, 14);

    if (flags & DESC_F_INDIRECT) {
      // 2.7.5.3.1 virtio 1.2: the driver MUST NOT set INDIRECT unless VIRTIO_F_INDIRECT_DESC was negotiated.
      if (!allowIndirect) return ERR_INDIRECT_NOT_NEGOTIATED;
      // 2.7.5.3.1 virtio 1.2: the driver MUST NOT set INDIRECT within an indirect descriptor.
      if (indirect) return ERR_NESTED_INDIRECT;
      // 2.7.5.3.1 virtio 1.2: the driver MUST NOT set both INDIRECT and NEXT.
      if (flags & DESC_F_NEXT) return ERR_INDIRECT_WITH_NEXT;
      // 2.7.5.3 virtio 1.2: the table is len/16 descriptors (non-empty, whole descriptors) in guest memory.
      if (len == 0 || (len & 15) != 0 || !inRam(addr, <u64>len, ramSize)) return ERR_BAD_INDIRECT_TABLE;
      // 2.7.5.3.2 virtio 1.2: WRITE on the descriptor that refers to the table is ignored.
      table = <u32>addr;
      entries = len >> 4;
      idx = 0;
      visited = 0;
      indirect = true;
      continue;
    }

    // QEMU/rust-vmm practice (virtio 1.2 2.7.5 gives no meaning to an empty buffer): zero-length buffers refused.
    if (len == 0) return ERR_ZERO_LENGTH;
    // 2.7.5 virtio 1.2: addr/len describe a buffer in guest memory; it must lie wholly inside RAM (u64, no wrap).
    if (!inRam(addr, <u64>len, ramSize)) return ERR_SEGMENT_OUT_OF_RAM;
    const w = flags & DESC_F_WRITE;
    if (w) seenWrite = true;
    // 2.7.4.2 virtio 1.2: device-writable descriptors MUST come after all device-readable ones.
    else if (seenWrite) return ERR_READABLE_AFTER_WRITABLE;
    // Device limit (caller's scratch size): refuse rather than overrun the segment buffer.
    if (n >= maxSeg) return ERR_TOO_MANY_SEGMENTS;
    store<u32>(out, <u32>addr);
    store<u32>(out, len, 4);
    store<u32>(out, w, 8);
    out += SEG_BYTES;
    n++;

    if (!(flags & DESC_F_NEXT)) return <i32>n;
    // 2.7.5 virtio 1.2: next is an index into the same table (< Queue Size, or < len/16 when indirect).
    if (next >= entries) return ERR_NEXT_OUT_OF_RANGE;
    idx = next;
  }
  return ERR_LOOP; // unreachable
}

// ---- PFN fill ----

/** fill_pfns flags */
const FILL_LIE: u32 = 1;          // fault injection: set bitmap bits (and count) without filling
const FILL_SET_PADDING: u32 = 2;  // fault injection: set the padding bits of the last bitmap byte
const FILL_NO_FILL: u32 = 4;      // accounting only: no fill, no bits
const FILL_BITMAP_GUEST: u32 = 8; // bitmapPtr is guest-physical (checked, dirtied) instead of absolute scratch

/** Secondary results of the last fill_pfns / unmark_pfns call (mutable globals: not data segments). */
export let res_out_of_range: i32 = 0;
/** Index in the PFN list of the first out-of-range PFN, -1 if none. */
export let res_first_bad_index: i32 = -1;
/** fill_pfns: PFNs already marked in the track bitmap (inflated twice). */
export let res_already_inflated: i32 = 0;
/** unmark_pfns: PFNs that were not marked (deflating pages never inflated). */
export let res_not_inflated: i32 = 0;
/** fill_pfns: number of coalesced memory.fill runs (one dirty() each). */
export let res_runs: i32 = 0;
/** fill_pfns: pages actually written (pages already holding the fill byte are left untouched). */
export let res_pages_written: u32 = 0;

const PAGE_SHIFT: u32 = 12;

/**
 * Offset of the first 32-byte block of the 4 KiB page at absolute `p` that does not hold `pattern`
 * in every byte, or 4096 if the whole page holds it.
 */
@inline
function firstMismatch(p: usize, pattern: u64): usize {
  for (let o: usize = 0; o < 4096; o += 32) {
    const d = (load<u64>(p + o) ^ pattern) | (load<u64>(p + o + 8) ^ pattern)
      | (load<u64>(p + o + 16) ^ pattern) | (load<u64>(p + o + 24) ^ pattern);
    if (d != 0) return o;
  }
  return 4096;
}

/**
 * Brings pages lo..hi to the fill byte, page by page: each page is read only up to its first block
 * that differs and written from there on (check and fill fused: nothing is read twice, a page that
 * already holds the byte is never written, so a host page the guest never touched stays unallocated;
 * a first write costs a host page fault, ~3 x the fill itself). The JIT is told once per stretch of
 * consecutive written pages (v86 walks the stretch page by page).
 */
function flushRun(base: u32, lo: u32, hi: u32, fill: u32): void {
  const pattern: u64 = <u64>(fill & 0xff) * 0x0101010101010101;
  let from: i64 = -1; // first page of the stretch being written
  for (let pg: u32 = lo; pg <= hi; pg++) {
    const p: usize = <usize>base + (<usize>pg << PAGE_SHIFT);
    const o = firstMismatch(p, pattern);
    if (o < 4096) {
      memory.fill(p + o, <u8>fill, 4096 - o);
      if (from < 0) from = pg;
    } else if (from >= 0) {
      dirtyPages(<u32>from, pg - 1);
      from = -1;
    }
  }
  if (from >= 0) dirtyPages(<u32>from, hi);
}

@inline
function dirtyPages(lo: u32, hi: u32): void {
  dirty(lo << PAGE_SHIFT, (hi + 1) << PAGE_SHIFT);
  res_runs++;
  res_pages_written += hi - lo + 1;
}

/**
 * Read `count` le32 PFNs at guest-physical `pfnAddr`; fill every in-range page with byte `fill`,
 * coalescing consecutive (ascending or descending) PFNs into one memory.fill + one dirty() per run.
 * PFNs >= ramSize/4096 are skipped and counted (res_out_of_range, res_first_bad_index).
 * Bitmap (when bitmapPtr != 0 or FILL_BITMAP_GUEST): ceil(count/8) bytes, bit i (LSB first) = PFN i filled.
 * trackPtr != 0: absolute per-guest-page bitmap; in-range PFNs get their bit set (res_already_inflated counts
 * the ones already set).
 * Returns the number of pages filled (or claimed filled under FILL_LIE), or -1 if the PFN list is not in RAM,
 * -2 if a guest bitmap is not in RAM.
 */
export function fill_pfns(
  base: u32, ramSize: u32, pfnAddr: u32, count: u32, fill: u32,
  bitmapPtr: u32, flags: u32, trackPtr: u32,
): i32 {
  res_out_of_range = 0;
  res_first_bad_index = -1;
  res_already_inflated = 0;
  res_not_inflated = 0;
  res_runs = 0;
  res_pages_written = 0;
  if (count > 0x10000000 || !inRam(<u64>pfnAddr, <u64>count << 2, ramSize)) return -1;
  const bitmapBytes: u32 = (count + 7) >> 3;
  let useBitmap = bitmapPtr != 0;
  let bm: usize = <usize>bitmapPtr;
  const bitmapGuest = (flags & FILL_BITMAP_GUEST) != 0;
  if (bitmapGuest) {
    if (!inRam(<u64>bitmapPtr, <u64>bitmapBytes, ramSize)) return -2;
    useBitmap = true;
    bm = <usize>base + <usize>bitmapPtr;
  }
  const pages: u32 = ramSize >> PAGE_SHIFT;
  const doFill = (flags & (FILL_NO_FILL | FILL_LIE)) == 0;
  const setBits = (flags & FILL_NO_FILL) == 0;
  const list: usize = <usize>base + <usize>pfnAddr;

  let filled: i32 = 0;
  let lo: u32 = 0, hi: u32 = 0;
  let dir: i32 = 0;        // 0 single page, 1 ascending, -1 descending
  let active = false;
  let acc: u32 = 0;        // bitmap byte being built

  for (let i: u32 = 0; i < count; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn >= pages) {
      res_out_of_range++;
      if (res_first_bad_index < 0) res_first_bad_index = <i32>i;
    } else {
      if (trackPtr != 0) {
        const tp: usize = <usize>trackPtr + <usize>(pfn >> 3);
        const bit: u32 = 1 << (pfn & 7);
        const b = <u32>load<u8>(tp);
        if (b & bit) res_already_inflated++;
        store<u8>(tp, <u8>(b | bit));
      }
      if (setBits) {
        filled++;
        acc |= 1 << (i & 7);
      }
      if (doFill) {
        if (active && dir >= 0 && pfn == hi + 1) { hi = pfn; dir = 1; }
        else if (active && dir <= 0 && pfn + 1 == lo) { lo = pfn; dir = -1; }
        else {
          if (active) flushRun(base, lo, hi, fill);
          lo = pfn; hi = pfn; dir = 0; active = true;
        }
      }
    }
    if ((i & 7) == 7) {
      if (useBitmap) store<u8>(bm + (<usize>i >> 3), <u8>acc);
      acc = 0;
    }
  }
  if (active) flushRun(base, lo, hi, fill);
  if (useBitmap && (count & 7) != 0) {
    if (flags & FILL_SET_PADDING) acc |= (0xff << (count & 7)) & 0xff;
    store<u8>(bm + (<usize>(count - 1) >> 3), <u8>acc);
  }
  if (useBitmap && bitmapGuest && bitmapBytes != 0) dirty(bitmapPtr, bitmapPtr + bitmapBytes);
  return filled;
}

/**
 * Deflate accounting: clear the track bit of each in-range PFN at guest-physical `pfnAddr`.
 * Returns the number of PFNs whose bit was set (and is now clear); res_not_inflated counts in-range PFNs
 * that were not marked, res_out_of_range / res_first_bad_index the out-of-range ones. -1: list not in RAM.
 */
export function unmark_pfns(base: u32, ramSize: u32, pfnAddr: u32, count: u32, trackPtr: u32): i32 {
  res_out_of_range = 0;
  res_first_bad_index = -1;
  res_already_inflated = 0;
  res_not_inflated = 0;
  res_runs = 0;
  res_pages_written = 0;
  if (count > 0x10000000 || !inRam(<u64>pfnAddr, <u64>count << 2, ramSize)) return -1;
  const pages: u32 = ramSize >> PAGE_SHIFT;
  const list: usize = <usize>base + <usize>pfnAddr;
  let unmarked: i32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const pfn = load<u32>(list + (<usize>i << 2));
    if (pfn >= pages) {
      res_out_of_range++;
      if (res_first_bad_index < 0) res_first_bad_index = <i32>i;
      continue;
    }
    if (trackPtr == 0) continue;
    const tp: usize = <usize>trackPtr + <usize>(pfn >> 3);
    const bit: u32 = 1 << (pfn & 7);
    const b = <u32>load<u8>(tp);
    if (b & bit) {
      unmarked++;
      store<u8>(tp, <u8>(b & ~bit));
    } else {
      res_not_inflated++;
    }
  }
  return unmarked;
}

/** Fill guest-physical [addr, addr+len) with `fill` and dirty it. Returns 1, or 0 on refusal (empty / outside RAM). */
export function fill_range(base: u32, ramSize: u32, addr: u32, len: u32, fill: u32): i32 {
  if (len == 0 || !inRam(<u64>addr, <u64>len, ramSize)) return 0;
  memory.fill(<usize>base + <usize>addr, <u8>fill, <usize>len);
  dirty(addr, addr + len);
  return 1;
}

/**
 * Write used-ring element `usedIdx % qsize` = {id, len} and then used.idx = usedIdx + 1 (split ring at
 * guest-physical `usedAddr`), dirtying both. Returns the new used idx (u16), or -1 if the ring is not in RAM.
 */
export function push_used(base: u32, ramSize: u32, usedAddr: u32, qsize: u32, usedIdx: u32, id: u32, len: u32): i32 {
  // 2.7.8 virtio 1.2: used ring = flags, idx, ring[Queue Size] of 8-byte elements, avail_event.
  if (qsize == 0 || qsize > 32768 || (usedAddr & 3) != 0 || !inRam(<u64>usedAddr, 6 + (<u64>qsize << 3), ramSize)) return -1;
  const slot: u32 = (usedIdx & 0xffff) % qsize;
  const e: u32 = usedAddr + 4 + (slot << 3);
  store<u32>(<usize>base + <usize>e, id);
  store<u32>(<usize>base + <usize>e, len, 4);
  dirty(e, e + 8);
  const ni: u32 = (usedIdx + 1) & 0xffff;
  store<u16>(<usize>base + <usize>usedAddr, <u16>ni, 2);
  dirty(usedAddr + 2, usedAddr + 4);
  return <i32>ni;
}

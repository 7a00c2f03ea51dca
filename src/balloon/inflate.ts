/**
 * THE INFLATE / DEFLATE PATH (inflate queue 0, deflate queue 1).
 *
 * Inflate request: the readable part is an array of le32 PFNs (4 KiB units). Every valid page is filled
 * through the hot path (`fillPfns`, runs coalesced) with 0 — or poison_val's byte when PAGE_POISON is
 * negotiated — so v86 snapshots (which store only non-zero pages) shrink, and marked in the tracking
 * bitmap. With DEVICE_INIT_ON_INFLATE (bit 7) the chain ends in a device-writable bitmap: bit i (LSB
 * first) = PFN i was initialised; exactly ceil(N/8) bytes are written (padding bits 0) and that is the
 * used length — by the hot path straight into guest RAM for Linux's one-PFN-buffer, one-bitmap-buffer
 * layout, else merged here from per-chunk bitmaps. Otherwise the used length is 0.
 *
 * Decisions (never trust the guest):
 *  - a readable descriptor whose length is not a multiple of 4 (so a PFN would be cut or split across
 *    descriptors): `pfn-buffer-misaligned`, the WHOLE request is refused — no fill, no bitmap, used 0;
 *  - more than 256 PFNs (Linux's maximum): `too-many-pfns` warning, still handled in full;
 *  - more than 1024 PFNs (one 4 KiB page of them): `pfn-list-too-long`, the WHOLE request is refused (used 0),
 *    so one chain never costs more than 1024 page fills;
 *  - a PFN naming a page that holds the request's own PFN list or bitmap: `request-inflates-own-buffer`,
 *    the WHOLE request is refused (filling it would rewrite the request while it is read);
 *  - PFNs past RAM: `pfn-out-of-range` naming the first one; skipped (never written), bit 0;
 *  - bit 7 bitmap shorter than ceil(N/8): `bitmap-too-short`; NO bitmap byte is written and the used
 *    length is 0 (the driver must then treat every page as not initialised); the pages are still taken
 *    and filled (the base spec lets the device modify inflated pages);
 *  - writable descriptors without bit 7 (or on deflate): `unexpected-writable`, ignored, used 0;
 *  - poison_val whose bytes differ: no fill at all, bits 0 (see context.ts fillByteFor).
 *
 * Deflate request: PFN array, acknowledged without any fill (the guest re-initialises them), tracking bits
 * cleared; deflating a page never inflated → `deflate-not-inflated` (non-fatal).
 */
import type { DescriptorChain, Segment } from "../virtio/chain.js";
import { FILL_BITMAP_GUEST, FILL_LIE, FILL_NO_FILL, FILL_SET_PADDING } from "../hotpath/types.js";
import { readSegments, writeSegments } from "../memory/access.js";
import { countFill, PAGE_SIZE, type HandlerContext } from "./context.js";
import { announceInitFault } from "./faults.js";
import { hasFeature } from "./features.js";

/** Linux's VIRTIO_BALLOON_ARRAY_PFNS_MAX. */
export const LINUX_MAX_PFNS = 256;
/**
 * Most PFNs one request may carry: one 4 KiB driver page of le32 entries (4 x Linux's maximum). Longer
 * lists are refused whole, so one chain costs at most this many page fills.
 */
export const MAX_PFNS_PER_REQUEST = PAGE_SIZE / 4;
/** PFNs per hot-path call (a multiple of 8, so each chunk's bitmap is whole bytes). */
export const INFLATE_CHUNK = 4096;

/**
 * Check that every readable segment holds whole le32 PFNs and that there are at most MAX_PFNS_PER_REQUEST;
 * emits the diagnostic and returns false if not.
 */
function pfnSegmentsOk(ctx: HandlerContext, chain: DescriptorChain, queue: number, what: string): boolean {
  const bad = chain.readable.findIndex((s) => s.len % 4 !== 0);
  if (bad < 0) {
    const n = chain.readableBytes / 4;
    if (n <= MAX_PFNS_PER_REQUEST) return true;
    ctx.diag.emit("pfn-list-too-long", `${what} request (head ${chain.head}) carries ${n} PFNs; at most ${MAX_PFNS_PER_REQUEST} (one 4 KiB page of PFNs) per request; refused, nothing done`, { head: chain.head, pfns: n, max: MAX_PFNS_PER_REQUEST }, queue);
    return false;
  }
  ctx.diag.emit(
    "pfn-buffer-misaligned",
    `${what} request (head ${chain.head}): readable descriptor ${bad} is ${chain.readable[bad]!.len} bytes, not a whole number of le32 PFNs (${chain.readableBytes} bytes in all); request refused, nothing done`,
    { head: chain.head, readableBytes: chain.readableBytes, segmentLengths: chain.readable.map((s) => s.len) },
    queue,
  );
  return false;
}

/**
 * The request's PFN list as the driver wrote it, read before any fill: the list may lie in a page the
 * same request inflates (a driver bug), and a diagnostic must name the PFN the driver sent.
 */
function copyPfns(ctx: HandlerContext, segs: readonly Segment[]): Uint32Array {
  const bytes = readSegments(ctx.mem, segs);
  return new Uint32Array(bytes.buffer, 0, bytes.length >>> 2);
}

/**
 * A request must not inflate a page that holds one of its own buffers (its PFN list or its bitmap): that
 * page is in use, not unused, and filling it would rewrite the request while the device reads it (later
 * PFNs, the bitmap). Diagnosed and refused whole; false then.
 */
function ownBuffersSpared(ctx: HandlerContext, chain: DescriptorChain, queue: number, pfns: Uint32Array): boolean {
  const own = new Set<number>();
  for (const s of [...chain.readable, ...chain.writable]) {
    for (let p = Math.floor(s.addr / PAGE_SIZE); p <= Math.floor((s.addr + s.len - 1) / PAGE_SIZE); p++) own.add(p);
  }
  const i = pfns.findIndex((pfn) => own.has(pfn));
  if (i < 0) return true;
  ctx.diag.emit("request-inflates-own-buffer", `inflate request (head ${chain.head}): PFN 0x${pfns[i]!.toString(16)} (index ${i}) is a page holding the request's own PFN list or bitmap; request refused, nothing done`, { head: chain.head, pfn: pfns[i], index: i }, queue);
  return false;
}

function diagnoseCount(ctx: HandlerContext, chain: DescriptorChain, queue: number, what: string, n: number): void {
  if (n === 0) {
    ctx.diag.emit("pfn-buffer-empty", `${what} request (head ${chain.head}) carries no PFN`, { head: chain.head }, queue);
  } else if (n > LINUX_MAX_PFNS) {
    ctx.diag.emit("too-many-pfns", `${what} request (head ${chain.head}) carries ${n} PFNs (Linux sends at most ${LINUX_MAX_PFNS}); handled anyway`, { head: chain.head, pfns: n }, queue);
  }
}

function diagnoseOutOfRange(ctx: HandlerContext, chain: DescriptorChain, queue: number, what: string, outOfRange: number, firstBadIndex: number, pfns: Uint32Array): void {
  if (outOfRange === 0) return;
  const pfn = pfns[firstBadIndex] ?? -1;
  const ramPages = ctx.mem.size / PAGE_SIZE;
  ctx.diag.emit(
    "pfn-out-of-range",
    `${what} request (head ${chain.head}): PFN 0x${pfn.toString(16)} (index ${firstBadIndex}) is past the end of guest RAM (${ramPages} pages); ${outOfRange} such PFN(s) skipped`,
    { head: chain.head, firstBadPfn: pfn, firstBadIndex, outOfRange, ramPages },
    queue,
  );
}

/** The PFN list of a request in hot-path-sized pieces: guest address, PFN count, index of the first PFN. */
function* pfnChunks(chain: DescriptorChain): Generator<{ addr: number; count: number; index: number }> {
  let index = 0;
  for (const seg of chain.readable) {
    const count = seg.len >>> 2;
    for (let done = 0; done < count; done += INFLATE_CHUNK) {
      const c = Math.min(INFLATE_CHUNK, count - done);
      yield { addr: seg.addr + done * 4, count: c, index };
      index += c;
    }
  }
}

/** The inflate event of a request refused whole (nothing filled, used length 0). */
function emitRefusedInflate(ctx: HandlerContext, queue: number, pfns: number): void {
  ctx.events.emit("inflate", {
    time: ctx.clock.now(), queue, pfns, pages: 0, initialised: 0, outOfRange: 0, alreadyInflated: 0,
    bitmapBytes: 0, inflatedPages: ctx.tracker.count, refused: true,
  });
}

/** Handle one inflate chain; returns the used length. */
export function handleInflate(ctx: HandlerContext, chain: DescriptorChain, queue: number): number {
  ctx.counters.requests.inflate++;
  const negotiated = ctx.negotiated();
  const bit7 = hasFeature(negotiated, "DEVICE_INIT_ON_INFLATE");
  if (!pfnSegmentsOk(ctx, chain, queue, "inflate")) {
    emitRefusedInflate(ctx, queue, 0);
    return 0;
  }
  const n = chain.readableBytes / 4;
  diagnoseCount(ctx, chain, queue, "inflate", n);
  ctx.work.units += n;
  const pfns = copyPfns(ctx, chain.readable);
  if (!ownBuffersSpared(ctx, chain, queue, pfns)) {
    emitRefusedInflate(ctx, queue, n);
    return 0;
  }

  // The bitmap (bit 7) or unexpected writable descriptors.
  const need = Math.ceil(n / 8);
  let bitmapOk = false;
  if (!bit7) {
    if (chain.writable.length > 0) {
      ctx.diag.emit("unexpected-writable", `inflate request (head ${chain.head}) has ${chain.writableBytes} device-writable bytes but DEVICE_INIT_ON_INFLATE is not negotiated; ignored, nothing written`, { head: chain.head, writableBytes: chain.writableBytes }, queue);
    }
  } else if (chain.writableBytes < need) {
    ctx.diag.emit("bitmap-too-short", `inflate request (head ${chain.head}): ${n} PFNs need a ${need}-byte init bitmap, the chain has ${chain.writableBytes} device-writable bytes; no bitmap written (used length 0), pages count as not initialised`, { head: chain.head, pfns: n, needBytes: need, writableBytes: chain.writableBytes }, queue);
  } else if (n > 0) {
    bitmapOk = true;
  }
  const paddingFault = bitmapOk && ctx.faults.setPaddingBits && n % 8 !== 0;
  // Linux's layout (one PFN buffer, one bitmap buffer of >= ceil(N/8) bytes): the hot path writes the
  // bitmap straight into guest RAM. Other layouts are assembled from per-chunk bitmaps in scratch.
  const direct = bitmapOk && chain.readable.length === 1 && n <= INFLATE_CHUNK && chain.writable[0]!.len >= need;
  const bitmap = bitmapOk && !direct ? new Uint8Array(need) : null;

  const fill = ctx.fillByte();
  let flags = 0;
  if (fill === null) flags = FILL_NO_FILL;
  else if (ctx.faults.lieAboutInit && bitmapOk) flags = FILL_LIE;
  if (direct) flags |= FILL_BITMAP_GUEST | (paddingFault ? FILL_SET_PADDING : 0);
  const bitmapPtr = direct ? chain.writable[0]!.addr : bitmap ? ctx.bitmapScratch : 0;

  let filled = 0, outOfRange = 0, firstBadIndex = -1, already = 0, refusedByHotPath = false;
  for (const { addr, count, index } of pfnChunks(chain)) {
    const r = ctx.hot.fillPfns(addr, count, fill ?? 0, bitmapPtr, flags, ctx.tracker.ptr);
    if (r.filled < 0) {
      // Cannot happen for segments checked inside RAM; never trust, never throw.
      ctx.diag.emit("chain-error", `inflate request (head ${chain.head}): PFN list at 0x${addr.toString(16)} refused by the hot path (${r.filled})`, { head: chain.head, code: r.filled }, queue);
      refusedByHotPath = true;
      continue;
    }
    filled += r.filled;
    if (r.outOfRange > 0 && firstBadIndex < 0) firstBadIndex = index + r.firstBadIndex;
    outOfRange += r.outOfRange;
    already += r.alreadyInflated;
    if (bitmap) mergeBits(bitmap, index, new Uint8Array(ctx.mem.memory.buffer, bitmapPtr, Math.ceil(count / 8)), count);
  }
  const valid = n - outOfRange;
  ctx.tracker.count += valid - already;
  ctx.counters.pagesInflated += valid;
  const initialised = (flags & (FILL_NO_FILL | FILL_LIE)) === 0 ? filled : 0;
  if (initialised > 0 && fill !== null) countFill(ctx.counters, fill, initialised * PAGE_SIZE);

  diagnoseOutOfRange(ctx, chain, queue, "inflate", outOfRange, firstBadIndex, pfns);
  if (already > 0) {
    ctx.diag.emit("inflate-already-inflated", `inflate request (head ${chain.head}): ${already} page(s) were already in the balloon`, { head: chain.head, alreadyInflated: already }, queue);
  }

  let used = 0;
  if (direct && !refusedByHotPath) {
    used = need;
    ctx.counters.bitmapsWritten++;
  } else if (bitmap) {
    if (paddingFault) bitmap[need - 1]! |= (0xff << (n % 8)) & 0xff;
    used = writeSegments(ctx.mem, chain.writable, bitmap);
    ctx.counters.bitmapsWritten++;
  }
  if (paddingFault && used > 0) announceInitFault(ctx, "setPaddingBits", "bitmap-padding-set", queue, { pfns: n });
  if ((flags & FILL_LIE) !== 0 && filled > 0) announceInitFault(ctx, "lieAboutInit", "inflate-claimed-unfilled", queue, { pages: filled });
  ctx.events.emit("inflate", {
    time: ctx.clock.now(), queue, pfns: n, pages: valid, initialised, outOfRange, alreadyInflated: already,
    bitmapBytes: used, inflatedPages: ctx.tracker.count, refused: false,
  });
  return used;
}

/** OR `count` bits of `src` (bit 0 = first) into `dst` starting at bit `at`. */
export function mergeBits(dst: Uint8Array, at: number, src: Uint8Array, count: number): void {
  if (at % 8 === 0) {
    const whole = count >> 3;
    dst.set(src.subarray(0, whole), at >> 3);
    const rest = count & 7;
    if (rest) dst[(at >> 3) + whole]! |= src[whole]! & ((1 << rest) - 1);
    return;
  }
  for (let i = 0; i < count; i++) {
    if ((src[i >> 3]! >> (i & 7)) & 1) dst[(at + i) >> 3]! |= 1 << ((at + i) & 7);
  }
}

/** Handle one deflate chain; returns the used length (always 0). */
export function handleDeflate(ctx: HandlerContext, chain: DescriptorChain, queue: number): number {
  ctx.counters.requests.deflate++;
  if (chain.writable.length > 0) {
    ctx.diag.emit("unexpected-writable", `deflate request (head ${chain.head}) has ${chain.writableBytes} device-writable bytes; ignored, nothing written`, { head: chain.head, writableBytes: chain.writableBytes }, queue);
  }
  if (!pfnSegmentsOk(ctx, chain, queue, "deflate")) {
    ctx.events.emit("deflate", { time: ctx.clock.now(), queue, pfns: 0, pages: 0, outOfRange: 0, notInflated: 0, inflatedPages: ctx.tracker.count, refused: true });
    return 0;
  }
  const n = chain.readableBytes / 4;
  diagnoseCount(ctx, chain, queue, "deflate", n);
  const pfns = copyPfns(ctx, chain.readable);
  let unmarked = 0, outOfRange = 0, firstBadIndex = -1, notInflated = 0;
  for (const { addr, count, index } of pfnChunks(chain)) {
    const r = ctx.hot.unmarkPfns(addr, count, ctx.tracker.ptr);
    if (r.unmarked < 0) continue;
    unmarked += r.unmarked;
    if (r.outOfRange > 0 && firstBadIndex < 0) firstBadIndex = index + r.firstBadIndex;
    outOfRange += r.outOfRange;
    notInflated += r.notInflated;
  }
  ctx.tracker.count = Math.max(0, ctx.tracker.count - unmarked);
  const valid = n - outOfRange;
  ctx.counters.pagesDeflated += valid;
  diagnoseOutOfRange(ctx, chain, queue, "deflate", outOfRange, firstBadIndex, pfns);
  if (notInflated > 0) {
    ctx.diag.emit("deflate-not-inflated", `deflate request (head ${chain.head}): ${notInflated} page(s) were never inflated (or already deflated)`, { head: chain.head, notInflated }, queue);
  }
  ctx.events.emit("deflate", { time: ctx.clock.now(), queue, pfns: n, pages: valid, outOfRange, notInflated, inflatedPages: ctx.tracker.count, refused: false });
  return 0;
}

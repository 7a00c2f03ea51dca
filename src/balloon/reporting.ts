/**
 * Free page reporting (PAGE_REPORTING, bit 5) and device-initialised reported pages (bit 6).
 *
 * A report is one chain of device-writable descriptors, each (addr, len) a range of free guest pages
 * (Linux: up to 32 ranges of 4 MiB on 6.1). What the device does with each range:
 *  - neither PAGE_POISON nor bit 6: the device MAY modify the pages → we zero them (so v86 snapshots,
 *    which store only non-zero pages, shrink); `zeroFreedPages: false` leaves them alone; used length 0;
 *  - PAGE_POISON without bit 6: the device may only leave them or write poison_val → we fill with
 *    poison_val's byte (or leave them if poison_val is not a repeated byte); used length 0;
 *  - bit 6: the device MUST fill (zero, or poison_val with PAGE_POISON) and the used length says how many
 *    bytes were initialised. The driver counts the used length from the start of the chain, so it is the
 *    length of the PREFIX of ranges that were filled in full (all of them, normally; 0 if poison_val is not
 *    a repeated byte). Only the ranges' own bytes are ever written, even when not page-aligned.
 * Readable descriptors in a report are ignored (`unexpected-readable`); overlapping ranges refuse the whole
 * chain (`ranges-overlap`, see ranges.ts), so the used length never exceeds guest RAM.
 */
import type { DescriptorChain } from "../virtio/chain.js";
import { countFill, PAGE_SIZE, type HandlerContext } from "./context.js";
import { announceInitFault } from "./faults.js";
import { hasFeature } from "./features.js";
import { checkRanges } from "./ranges.js";

/** What `scribbleReported` writes: non-zero, and not a poison value Linux uses (0xAA). */
const SCRIBBLE = 0x5a;

export function handleReport(ctx: HandlerContext, chain: DescriptorChain, queue: number): number {
  ctx.counters.requests.report++;
  const negotiated = ctx.negotiated();
  const bit6 = hasFeature(negotiated, "DEVICE_INIT_REPORTED");
  const poison = hasFeature(negotiated, "PAGE_POISON");

  if (chain.readable.length > 0) {
    ctx.diag.emit("unexpected-readable", `report (head ${chain.head}) has ${chain.readableBytes} device-readable bytes; ignored`, { head: chain.head, readableBytes: chain.readableBytes }, queue);
  }
  if (chain.writable.length === 0) {
    ctx.diag.emit("report-without-pages", `report (head ${chain.head}) has no device-writable range`, { head: chain.head }, queue);
    ctx.events.emit("report", { time: ctx.clock.now(), queue, ranges: 0, pages: 0, bytes: 0, filledBytes: 0, usedLen: 0 });
    return 0;
  }
  if (!checkRanges(ctx, chain, queue, "report")) {
    ctx.events.emit("report", { time: ctx.clock.now(), queue, ranges: chain.writable.length, pages: 0, bytes: chain.writableBytes, filledBytes: 0, usedLen: 0 });
    return 0;
  }
  ctx.work.units += Math.ceil(chain.writableBytes / PAGE_SIZE);

  const fill = ctx.fillByte();
  // Whether we write at all: bit 6 forces it; PAGE_POISON allows only poison; otherwise our choice.
  const wantFill = fill !== null && (bit6 || poison || ctx.zeroFreedPages);
  const lie = bit6 && ctx.faults.lieAboutInit;
  const scribble = !bit6 && !poison && ctx.faults.scribbleReported;

  let filledBytes = 0;
  let prefix = 0;
  let prefixOpen = true;
  for (const s of chain.writable) {
    if (scribble) {
      ctx.hot.fillRange(s.addr, s.len, SCRIBBLE);
      continue;
    }
    const ok = wantFill && !lie && ctx.hot.fillRange(s.addr, s.len, fill);
    if (ok) {
      filledBytes += s.len;
      countFill(ctx.counters, fill, s.len);
    }
    if (ok && prefixOpen) prefix += s.len;
    else prefixOpen = false;
  }

  let used = 0;
  if (bit6) {
    used = lie ? chain.writableBytes : prefix;
    if (ctx.faults.shortReportUsedLength && used > 0) {
      used = Math.max(0, used - PAGE_SIZE);
      announceInitFault(ctx, "shortReportUsedLength", "used-length-shortened", queue, { usedLen: used });
    }
    if (lie) announceInitFault(ctx, "lieAboutInit", "report-claimed-unfilled", queue, { usedLen: used });
  }
  if (scribble) announceInitFault(ctx, "scribbleReported", "report-scribbled", queue, { bytes: chain.writableBytes });
  const pages = Math.floor(chain.writableBytes / PAGE_SIZE);
  ctx.counters.pagesReported += pages;
  ctx.events.emit("report", {
    time: ctx.clock.now(), queue, ranges: chain.writable.length, pages, bytes: chain.writableBytes, filledBytes, usedLen: used,
  });
  return used;
}

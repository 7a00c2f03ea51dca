/**
 * Page ranges from the driver (free page reporting and hinting): device-writable descriptors, each a run
 * of free guest memory. One check for both queues: ranges not made of whole 4 KiB pages are diagnosed
 * (only their own bytes are ever touched), and overlapping ranges refuse the chain — each range is
 * distinct free memory, so ranges that overlap are a broken driver, and refusing them bounds one chain's
 * work by guest RAM (they can no longer sum past it, nor wrap a 32-bit used length).
 */
import type { DescriptorChain } from "../virtio/chain.js";
import { PAGE_SIZE, type HandlerContext } from "./context.js";

/** Diagnose a chain's ranges; false when they overlap (the caller refuses the chain: nothing filled, used 0). */
export function checkRanges(ctx: HandlerContext, chain: DescriptorChain, queue: number, what: string): boolean {
  const ranges = chain.writable;
  const unaligned = ranges.filter((s) => s.addr % PAGE_SIZE !== 0 || s.len % PAGE_SIZE !== 0);
  if (unaligned.length > 0) {
    ctx.diag.emit("range-not-page-aligned", `${what} (head ${chain.head}): ${unaligned.length} range(s) not made of whole 4 KiB pages (first 0x${unaligned[0]!.addr.toString(16)}+0x${unaligned[0]!.len.toString(16)}); only their own bytes are touched`, { head: chain.head, ranges: unaligned.map((s) => [s.addr, s.len]) }, queue);
  }
  const sorted = [...ranges].sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!, cur = sorted[i]!;
    if (cur.addr < prev.addr + prev.len) {
      ctx.diag.emit("ranges-overlap", `${what} (head ${chain.head}): range 0x${cur.addr.toString(16)}+0x${cur.len.toString(16)} overlaps 0x${prev.addr.toString(16)}+0x${prev.len.toString(16)} (${ranges.length} ranges, ${chain.writableBytes} bytes); chain refused, nothing filled`, { head: chain.head, ranges: ranges.length, bytes: chain.writableBytes, first: [prev.addr, prev.len], second: [cur.addr, cur.len] }, queue);
      return false;
    }
  }
  return true;
}

import type { GuestMemory } from "../memory/guest-memory.js";
import {
  FILL_BITMAP_GUEST, FILL_LIE, FILL_NO_FILL, FILL_SET_PADDING, WALK_ERRORS,
  type FillResult, type HotPath, type UnmarkResult,
} from "./types.js";

const PAGE = 4096;

function inRam(addr: number, len: number, size: number): boolean {
  return addr >= 0 && len >= 0 && addr <= size && len <= size - addr;
}

/**
 * Plain-JS reference of the hot path with results identical to the AssemblyScript module
 * (DataView descriptor walk; one Uint8Array.fill + one dirty() per page). For randomised
 * equivalence tests and benchmarks; not meant to be fast.
 */
export function referenceHotPath(mem: GuestMemory): HotPath {
  const ram = () => mem.bytes();
  const ramView = () => new DataView(mem.memory.buffer, mem.base, mem.size);
  const abs = () => new DataView(mem.memory.buffer);
  const size = mem.size;

  return {
    kind: "js",

    walkChain(descAddr, qsize, head, outPtr, maxSeg, allowIndirect) {
      const E = WALK_ERRORS;
      if (qsize === 0 || qsize > 32768 || !inRam(descAddr, qsize * 16, size)) return E["desc-table-out-of-ram"];
      if (head >= qsize) return E["head-out-of-range"];
      const v = ramView();
      const out = abs();
      let table = descAddr, entries = qsize, idx = head, visited = 0, indirect = false, seenWrite = false, n = 0;
      let o = outPtr;
      for (;;) {
        if (++visited > entries) return E.loop;
        const d = table + idx * 16;
        const lo = v.getUint32(d, true), hi = v.getUint32(d + 4, true);
        const addr = hi * 0x100000000 + lo; // exact up to 2^53; anything >= 2^32 is outside RAM anyway
        const len = v.getUint32(d + 8, true);
        const flags = v.getUint16(d + 12, true);
        const next = v.getUint16(d + 14, true);
        if (flags & 4) {
          if (!allowIndirect) return E["indirect-not-negotiated"];
          if (indirect) return E["nested-indirect"];
          if (flags & 1) return E["indirect-with-next"];
          if (len === 0 || len % 16 !== 0 || hi !== 0 || !inRam(addr, len, size)) return E["bad-indirect-table"];
          table = addr; entries = len / 16; idx = 0; visited = 0; indirect = true;
          continue;
        }
        if (len === 0) return E["zero-length"];
        if (hi !== 0 || !inRam(addr, len, size)) return E["segment-out-of-ram"];
        const w = flags & 2;
        if (w) seenWrite = true;
        else if (seenWrite) return E["readable-after-writable"];
        if (n >= maxSeg) return E["too-many-segments"];
        out.setUint32(o, addr, true);
        out.setUint32(o + 4, len, true);
        out.setUint32(o + 8, w, true);
        o += 12;
        n++;
        if (!(flags & 1)) return n;
        if (next >= entries) return E["next-out-of-range"];
        idx = next;
      }
    },

    fillPfns(pfnAddr, count, fill, bitmapPtr, flags, trackPtr = 0): FillResult {
      const r: FillResult = { filled: 0, outOfRange: 0, firstBadIndex: -1, alreadyInflated: 0, runs: 0, pagesWritten: 0 };
      if (count > 0x10000000 || !inRam(pfnAddr, count * 4, size)) { r.filled = -1; return r; }
      const bitmapBytes = (count + 7) >>> 3;
      let useBitmap = bitmapPtr !== 0;
      let bm = bitmapPtr;
      const guestBm = (flags & FILL_BITMAP_GUEST) !== 0;
      if (guestBm) {
        if (!inRam(bitmapPtr, bitmapBytes, size)) { r.filled = -2; return r; }
        useBitmap = true;
        bm = mem.base + bitmapPtr;
      }
      const pages = Math.floor(size / PAGE);
      const doFill = (flags & (FILL_NO_FILL | FILL_LIE)) === 0;
      const setBits = (flags & FILL_NO_FILL) === 0;
      const v = ramView();
      const all = new Uint8Array(mem.memory.buffer);
      const bytes = ram();
      let acc = 0;
      let active = false, lo = 0, hi = 0, dir = 0;
      // Same effects as the wasm: a run's pages are written when the run ends (so a PFN list that lies in
      // a page being filled reads identically), pages already holding the byte are skipped, and each
      // written stretch counts as one run — but page by page, one Uint8Array.fill + dirty each.
      const holds = (p: number) => {
        for (let o = p * PAGE; o < p * PAGE + PAGE; o++) if (bytes[o] !== (fill & 0xff)) return false;
        return true;
      };
      const flush = (a: number, b: number) => {
        let writing = false;
        for (let p = a; p <= b; p++) {
          if (holds(p)) { writing = false; continue; }
          if (!writing) r.runs++;
          writing = true;
          r.pagesWritten++;
          bytes.fill(fill & 0xff, p * PAGE, p * PAGE + PAGE);
          mem.dirty(p * PAGE, p * PAGE + PAGE);
        }
      };
      for (let i = 0; i < count; i++) {
        const pfn = v.getUint32(pfnAddr + i * 4, true);
        if (pfn >= pages) {
          r.outOfRange++;
          if (r.firstBadIndex < 0) r.firstBadIndex = i;
        } else {
          if (trackPtr) {
            const bit = 1 << (pfn & 7);
            const b = all[trackPtr + (pfn >>> 3)]!;
            if (b & bit) r.alreadyInflated++;
            all[trackPtr + (pfn >>> 3)] = b | bit;
          }
          if (setBits) { r.filled++; acc |= 1 << (i & 7); }
          if (doFill) {
            if (active && dir >= 0 && pfn === hi + 1) { hi = pfn; dir = 1; }
            else if (active && dir <= 0 && pfn + 1 === lo) { lo = pfn; dir = -1; }
            else { if (active) flush(lo, hi); lo = hi = pfn; dir = 0; active = true; }
          }
        }
        if ((i & 7) === 7) {
          if (useBitmap) all[bm + (i >>> 3)] = acc;
          acc = 0;
        }
      }
      if (active) flush(lo, hi);
      if (useBitmap && (count & 7) !== 0) {
        if (flags & FILL_SET_PADDING) acc |= (0xff << (count & 7)) & 0xff;
        all[bm + ((count - 1) >>> 3)] = acc;
      }
      if (useBitmap && guestBm && bitmapBytes) mem.dirty(bitmapPtr, bitmapPtr + bitmapBytes);
      return r;
    },

    unmarkPfns(pfnAddr, count, trackPtr): UnmarkResult {
      const r: UnmarkResult = { unmarked: 0, outOfRange: 0, firstBadIndex: -1, notInflated: 0 };
      if (count > 0x10000000 || !inRam(pfnAddr, count * 4, size)) { r.unmarked = -1; return r; }
      const pages = Math.floor(size / PAGE);
      const v = ramView();
      const all = new Uint8Array(mem.memory.buffer);
      for (let i = 0; i < count; i++) {
        const pfn = v.getUint32(pfnAddr + i * 4, true);
        if (pfn >= pages) {
          r.outOfRange++;
          if (r.firstBadIndex < 0) r.firstBadIndex = i;
          continue;
        }
        if (!trackPtr) continue;
        const bit = 1 << (pfn & 7);
        const b = all[trackPtr + (pfn >>> 3)]!;
        if (b & bit) { r.unmarked++; all[trackPtr + (pfn >>> 3)] = b & ~bit; }
        else r.notInflated++;
      }
      return r;
    },

    fillRange(addr, len, fill) {
      if (len === 0 || !inRam(addr, len, size)) return false;
      ram().fill(fill & 0xff, addr, addr + len);
      mem.dirty(addr, addr + len);
      return true;
    },

    pushUsed(usedAddr, qsize, usedIdx, id, len) {
      if (qsize === 0 || qsize > 32768 || usedAddr % 4 !== 0 || !inRam(usedAddr, 6 + qsize * 8, size)) return -1;
      const v = ramView();
      const e = usedAddr + 4 + ((usedIdx & 0xffff) % qsize) * 8;
      v.setUint32(e, id >>> 0, true);
      v.setUint32(e + 4, len >>> 0, true);
      mem.dirty(e, e + 8);
      const ni = (usedIdx + 1) & 0xffff;
      v.setUint16(usedAddr + 2, ni, true);
      mem.dirty(usedAddr + 2, usedAddr + 4);
      return ni;
    },
  };
}

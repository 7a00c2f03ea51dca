import type { GuestMemory } from "./guest-memory.js";

/** Guest-physical buffer (same shape as virtio's Segment). */
export interface Span {
  addr: number;
  len: number;
}

/** True iff guest-physical [addr, addr+len) lies inside RAM (integers, no wrap: plain JS numbers). */
export function inRam(mem: GuestMemory, addr: number, len: number): boolean {
  return Number.isInteger(addr) && Number.isInteger(len) && addr >= 0 && len >= 0 && addr <= mem.size && len <= mem.size - addr;
}

function check(mem: GuestMemory, addr: number, len: number): void {
  if (!inRam(mem, addr, len)) throw new RangeError(`guest access [${addr}, +${len}) outside RAM (size ${mem.size})`);
}

function view(mem: GuestMemory): DataView {
  const b = mem.bytes();
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function readU8(mem: GuestMemory, addr: number): number { check(mem, addr, 1); return mem.bytes()[addr]!; }
export function readU16(mem: GuestMemory, addr: number): number { check(mem, addr, 2); return view(mem).getUint16(addr, true); }
export function readU32(mem: GuestMemory, addr: number): number { check(mem, addr, 4); return view(mem).getUint32(addr, true); }
/** le64 as bigint. */
export function readU64(mem: GuestMemory, addr: number): bigint { check(mem, addr, 8); return view(mem).getBigUint64(addr, true); }

export function writeU8(mem: GuestMemory, addr: number, v: number): void { check(mem, addr, 1); mem.bytes()[addr] = v; mem.dirty(addr, addr + 1); }
export function writeU16(mem: GuestMemory, addr: number, v: number): void { check(mem, addr, 2); view(mem).setUint16(addr, v, true); mem.dirty(addr, addr + 2); }
export function writeU32(mem: GuestMemory, addr: number, v: number): void { check(mem, addr, 4); view(mem).setUint32(addr, v >>> 0, true); mem.dirty(addr, addr + 4); }
export function writeU64(mem: GuestMemory, addr: number, v: bigint): void { check(mem, addr, 8); view(mem).setBigUint64(addr, v, true); mem.dirty(addr, addr + 8); }

/** Total bytes of some segments. */
export function segmentBytes(segs: readonly Span[]): number {
  let n = 0;
  for (const s of segs) n += s.len;
  return n;
}

/**
 * Copy out the concatenation of `segs` (each bounds-checked), at most `maxBytes` (default: all).
 * Returns a fresh Uint8Array (a copy: the guest may change its memory afterwards).
 */
export function readSegments(mem: GuestMemory, segs: readonly Span[], maxBytes = Infinity): Uint8Array {
  const total = Math.min(segmentBytes(segs), maxBytes);
  const out = new Uint8Array(total);
  const ram = mem.bytes();
  let o = 0;
  for (const s of segs) {
    if (o >= total) break;
    check(mem, s.addr, s.len);
    const n = Math.min(s.len, total - o);
    out.set(ram.subarray(s.addr, s.addr + n), o);
    o += n;
  }
  return out;
}

/**
 * Scatter `data` over the writable `segs` in order (each bounds-checked), dirtying what is written.
 * Returns the bytes written (min(data.length, total segment bytes)) — the used length to report.
 */
export function writeSegments(mem: GuestMemory, segs: readonly Span[], data: Uint8Array): number {
  const ram = mem.bytes();
  let o = 0;
  for (const s of segs) {
    if (o >= data.length) break;
    check(mem, s.addr, s.len);
    const n = Math.min(s.len, data.length - o);
    ram.set(data.subarray(o, o + n), s.addr);
    mem.dirty(s.addr, s.addr + n);
    o += n;
  }
  return o;
}

/** 4 KiB pages of guest RAM holding any non-zero byte: what a v86 saved state stores (it omits zero pages). */
export function nonZeroPages(mem: GuestMemory): number {
  const b = mem.bytes();
  const words = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  let n = 0;
  for (let page = 0; page < words.length; page += 1024) {
    for (let i = page; i < page + 1024; i++) {
      if (words[i] !== 0) {
        n++;
        break;
      }
    }
  }
  return n;
}

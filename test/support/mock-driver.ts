/**
 * A mock virtio driver for one split virtqueue in a test memory: lays out the descriptor table, the
 * driver (avail) ring and the device (used) ring in guest RAM, builds chains (direct, indirect, and
 * deliberately malformed ones), publishes them, and reads back used elements.
 *
 * Typical use (device test):
 *
 *   const mem = createTestMemory(16 << 20);
 *   const hot = await loadHotPath(mem);
 *   const q = new MockQueue(mem, { size: 64 });                 // queue at guest 0x10000, buffers after it
 *   const vq = new Virtqueue(mem, hot, 0, 64);
 *   expect(q.attach(vq)).toBeNull();                             // registers + enable()
 *   const c = q.addChain([{ data: MockQueue.le32([5, 6, 7]) }, { len: 1, write: true }]);
 *   // ... device pops vq and pushes ...
 *   const [u] = q.used();                                        // { id, len, chain }
 *   q.read(u.chain!.buffers[1].addr, 1);                         // what the device wrote
 *
 * Malformed chains: write raw descriptors with `desc(i, {...})` / `indirectTable([...])` and publish the
 * head with `publish(head)`; `setAvailIdx(n)` moves the avail idx without adding entries.
 */
import type { GuestMemory } from "../../src/memory/guest-memory.js";
import type { Virtqueue } from "../../src/virtio/virtqueue.js";

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

/** One raw 16-byte descriptor. addr may be a bigint to write values >= 2^53 / 2^64-ish. */
export interface RawDesc {
  addr: number | bigint;
  len: number;
  flags?: number;
  next?: number;
}

/** A buffer of a chain: either `data` (device-readable unless `write`), or `len` bytes (zeroed). */
export interface BufSpec {
  data?: Uint8Array | readonly number[];
  len?: number;
  /** Device-writable. */
  write?: boolean;
  /** Use this guest address instead of allocating one (no data copied if `data` absent). */
  addr?: number;
  /** Byte the allocated buffer is filled with when `data` is absent (default 0). */
  fill?: number;
}

export interface ChainInfo {
  head: number;
  /** Descriptor indices used in the main table. */
  descs: number[];
  buffers: Array<{ addr: number; len: number; write: boolean }>;
  indirect: { addr: number; len: number } | null;
}

export interface UsedEntry {
  id: number;
  len: number;
  /** The chain added with addChain() whose head is `id` (undefined for raw chains). */
  chain?: ChainInfo;
}

export interface MockQueueOptions {
  size: number;
  /** Guest-physical addresses; defaults: descAddr = `at`, avail right after, used 4-aligned after avail. */
  descAddr?: number;
  availAddr?: number;
  usedAddr?: number;
  /** Where the queue starts when addresses are not given (default 0x10000). */
  at?: number;
  /** Guest region for buffers/indirect tables (default: next page after the rings, `bufferBytes` long). */
  bufferAddr?: number;
  bufferBytes?: number;
}

export class MockQueue {
  readonly size: number;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  readonly bufferAddr: number;
  readonly bufferEnd: number;
  private bump: number;
  private availIdx = 0;
  private lastUsed = 0;
  private free: number[] = [];
  private chains = new Map<number, ChainInfo>();

  constructor(readonly mem: GuestMemory, opts: MockQueueOptions) {
    const size = opts.size;
    if (size < 1 || size > 32768 || (size & (size - 1)) !== 0) throw new RangeError("size must be a power of 2");
    this.size = size;
    const at = opts.at ?? 0x10000;
    this.descAddr = opts.descAddr ?? at;
    this.availAddr = opts.availAddr ?? this.descAddr + 16 * size;
    this.usedAddr = opts.usedAddr ?? align(this.availAddr + 6 + 2 * size, 4);
    const ringEnd = Math.max(this.descAddr + 16 * size, this.availAddr + 6 + 2 * size, this.usedAddr + 6 + 8 * size);
    this.bufferAddr = opts.bufferAddr ?? align(ringEnd, 4096);
    this.bufferEnd = this.bufferAddr + (opts.bufferBytes ?? 256 * 1024);
    if (this.bufferEnd > mem.size) throw new RangeError("mock queue does not fit in guest RAM");
    this.bump = this.bufferAddr;
    // The driver zeroes its rings (Linux allocates them zeroed).
    this.bytes().fill(0, this.descAddr, this.descAddr + 16 * size);
    this.bytes().fill(0, this.availAddr, this.availAddr + 6 + 2 * size);
    this.bytes().fill(0, this.usedAddr, this.usedAddr + 6 + 8 * size);
    for (let i = 0; i < size; i++) this.free.push(i);
  }

  /** le32 encoding of numbers (PFN lists). */
  static le32(values: readonly number[]): Uint8Array {
    const b = new Uint8Array(values.length * 4);
    const v = new DataView(b.buffer);
    values.forEach((x, i) => v.setUint32(i * 4, x >>> 0, true));
    return b;
  }

  private bytes(): Uint8Array { return this.mem.bytes(); }
  private view(): DataView { const b = this.bytes(); return new DataView(b.buffer, b.byteOffset, b.byteLength); }

  /** Set the Virtqueue's registers to this layout and enable it; returns enable()'s result. */
  attach(vq: Virtqueue): string | null {
    vq.size = this.size;
    vq.descAddr = this.descAddr;
    vq.driverAddr = this.availAddr;
    vq.deviceAddr = this.usedAddr;
    return vq.enable();
  }

  /** Allocate `len` bytes of guest RAM in the buffer region. */
  alloc(len: number, alignment = 16): number {
    const a = align(this.bump, alignment);
    if (a + len > this.bufferEnd) throw new RangeError("mock queue buffer region exhausted (reset() or larger bufferBytes)");
    this.bump = a + len;
    return a;
  }

  /** Forget all buffer allocations (buffers of chains still in flight become invalid). */
  resetBuffers(): void { this.bump = this.bufferAddr; }

  write(addr: number, data: Uint8Array | readonly number[]): void { this.bytes().set(data, addr); }
  read(addr: number, len: number): Uint8Array { return this.bytes().slice(addr, addr + len); }

  /** Write main-table descriptor i. */
  desc(i: number, d: RawDesc): void {
    writeDescAt(this.view(), this.descAddr + 16 * i, d);
  }

  /** Write an indirect table into the buffer region; returns its {addr, len} (len = 16 * entries unless overridden). */
  indirectTable(descs: readonly RawDesc[]): { addr: number; len: number } {
    const addr = this.alloc(Math.max(16, 16 * descs.length), 16);
    const v = this.view();
    descs.forEach((d, i) => writeDescAt(v, addr + 16 * i, d));
    return { addr, len: 16 * descs.length };
  }

  /** Put `head` in the next avail slot and bump avail idx (the chain's descriptors must already be written). */
  publish(head: number): void {
    const v = this.view();
    v.setUint16(this.availAddr + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    v.setUint16(this.availAddr + 2, this.availIdx, true);
  }

  /** Set avail idx without adding entries (e.g. to make it jump more than size ahead). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.view().setUint16(this.availAddr + 2, this.availIdx, true);
  }

  get availIndex(): number { return this.availIdx; }

  setNoInterrupt(on: boolean): void {
    this.view().setUint16(this.availAddr, on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0, true);
  }

  /** used_event (EVENT_IDX): the used idx at which the driver wants the next interrupt. */
  setUsedEvent(idx: number): void {
    this.view().setUint16(this.availAddr + 4 + 2 * this.size, idx & 0xffff, true);
  }

  /** avail_event written by the device (EVENT_IDX). */
  availEvent(): number { return this.view().getUint16(this.usedAddr + 4 + 8 * this.size, true); }

  /** Device-written used idx. */
  usedIdx(): number { return this.view().getUint16(this.usedAddr + 2, true); }

  /** Descriptors currently free in the main table. */
  freeDescriptors(): number { return this.free.length; }

  /**
   * Build a chain from `bufs` (readable ones should come first; not enforced so tests can break the rule),
   * write it to free descriptors (or, with `indirect`, to an indirect table referenced by one descriptor),
   * and publish it unless `publish: false`. Returns the chain (buffers' guest addresses included).
   */
  addChain(bufs: readonly BufSpec[], opts: { indirect?: boolean; publish?: boolean } = {}): ChainInfo {
    if (bufs.length === 0) throw new RangeError("empty chain");
    const buffers = bufs.map((b) => {
      const len = b.data ? b.data.length : (b.len ?? 0);
      const addr = b.addr ?? this.alloc(Math.max(len, 1));
      if (b.data && b.addr === undefined) this.write(addr, b.data);
      else if (b.data) this.write(addr, b.data);
      else if (b.addr === undefined) this.bytes().fill(b.fill ?? 0, addr, addr + len);
      return { addr, len, write: !!b.write };
    });
    let info: ChainInfo;
    if (opts.indirect) {
      const raw: RawDesc[] = buffers.map((b, i) => ({
        addr: b.addr, len: b.len,
        flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < buffers.length ? VIRTQ_DESC_F_NEXT : 0),
        next: i + 1 < buffers.length ? i + 1 : 0,
      }));
      const table = this.indirectTable(raw);
      const head = this.takeDesc();
      this.desc(head, { addr: table.addr, len: table.len, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      info = { head, descs: [head], buffers, indirect: table };
    } else {
      if (this.free.length < buffers.length) throw new RangeError("not enough free descriptors");
      const descs = buffers.map(() => this.takeDesc());
      buffers.forEach((b, i) => {
        const last = i + 1 === buffers.length;
        this.desc(descs[i]!, {
          addr: b.addr, len: b.len,
          flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
          next: last ? 0 : descs[i + 1]!,
        });
      });
      info = { head: descs[0]!, descs, buffers, indirect: null };
    }
    this.chains.set(info.head, info);
    if (opts.publish !== false) this.publish(info.head);
    return info;
  }

  private takeDesc(): number {
    const d = this.free.shift();
    if (d === undefined) throw new RangeError("no free descriptors");
    return d;
  }

  /** New used elements since the last call (in order); descriptors of known chains are freed. */
  used(): UsedEntry[] {
    const v = this.view();
    const idx = v.getUint16(this.usedAddr + 2, true);
    const out: UsedEntry[] = [];
    while (this.lastUsed !== idx) {
      const e = this.usedAddr + 4 + 8 * (this.lastUsed % this.size);
      const id = v.getUint32(e, true);
      const len = v.getUint32(e + 4, true);
      const chain = this.chains.get(id);
      if (chain) {
        this.chains.delete(id);
        this.free.push(...chain.descs);
      }
      out.push(chain ? { id, len, chain } : { id, len });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

function align(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

function writeDescAt(v: DataView, at: number, d: RawDesc): void {
  v.setBigUint64(at, BigInt(d.addr), true);
  v.setUint32(at + 8, d.len >>> 0, true);
  v.setUint16(at + 12, d.flags ?? 0, true);
  v.setUint16(at + 14, d.next ?? 0, true);
}

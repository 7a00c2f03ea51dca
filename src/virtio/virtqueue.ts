import type { GuestMemory } from "../memory/guest-memory.js";
import { SEGMENT_RECORD_BYTES, walkErrorKind, type HotPath } from "../hotpath/types.js";
import { ChainError, type DescriptorChain, type Segment } from "./chain.js";
import { MAX_ADDR_REG, StateReader } from "./state.js";

export { CHAIN_ERROR_KINDS, ChainError, type ChainErrorKind, type DescriptorChain, type Segment } from "./chain.js";

/** VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7 virtio 1.2). */
const AVAIL_F_NO_INTERRUPT = 1;

export interface VirtqueueState {
  index: number;
  size: number;
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
  enabled: boolean;
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  allowIndirect: boolean;
  eventIdx: boolean;
}

export interface VirtqueueOptions {
  /** Segments one chain may have (scratch is sized from it). Default max(maxSize, 256). */
  maxSegments?: number;
}

function isAddr(x: unknown): x is number { return typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= Number.MAX_SAFE_INTEGER; }

/**
 * A split virtqueue (virtio 1.2, 2.7) on guest RAM: descriptor table, driver (avail) ring, device (used) ring.
 * The transport writes the registers (size, descAddr, driverAddr, deviceAddr) and calls enable();
 * the device pops chains and pushes used elements. Chain walks run in the hot path (wasm).
 */
export class Virtqueue {
  /** Queue Size register (reads maxSize after reset). */
  size: number;
  /** Guest-physical addresses of the descriptor table / driver area (avail) / device area (used). */
  descAddr = 0;
  driverAddr = 0;
  deviceAddr = 0;
  enabled = false;
  /** VIRTIO_F_INDIRECT_DESC negotiated (set by the device/transport at FEATURES_OK). */
  allowIndirect = false;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx = false;

  private lastAvail = 0;
  private usedIdx_ = 0;
  private signalledUsed = 0;
  private readonly scratch: number;
  private readonly maxSegments: number;

  constructor(
    private readonly mem: GuestMemory,
    private readonly hot: HotPath,
    readonly index: number,
    readonly maxSize: number,
    opts: VirtqueueOptions = {},
  ) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > 32768 || (maxSize & (maxSize - 1)) !== 0) {
      throw new RangeError(`virtqueue ${index}: maxSize ${maxSize} must be a power of 2 in [1, 32768]`);
    }
    this.size = maxSize;
    this.maxSegments = opts.maxSegments ?? Math.max(maxSize, 256);
    this.scratch = mem.allocScratch(this.maxSegments * SEGMENT_RECORD_BYTES);
  }

  /** Bytes of the three areas for a queue of `size` (2.7 virtio 1.2). */
  static areaSizes(size: number): { desc: number; driver: number; device: number } {
    return { desc: 16 * size, driver: 6 + 2 * size, device: 6 + 8 * size };
  }

  /** Driver set queue_enable = 1. Returns null, or the reason the queue is refused (it stays disabled). */
  enable(): string | null {
    const why = queueProblem(this.size, this.maxSize, this.mem.size, this.descAddr, this.driverAddr, this.deviceAddr);
    if (why) return why;
    this.enabled = true;
    this.lastAvail = 0;
    this.usedIdx_ = 0;
    this.signalledUsed = 0;
    return null;
  }

  /** Device/queue reset: registers back to their reset values. */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.driverAddr = this.deviceAddr = 0;
    this.enabled = false;
    this.allowIndirect = false;
    this.eventIdx = false;
    this.lastAvail = this.usedIdx_ = this.signalledUsed = 0;
  }

  private dv(): DataView {
    const b = this.mem.bytes();
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Next avail index the device will read (u16). */
  get lastAvailIdx(): number { return this.lastAvail; }
  /** Used idx the device last published (u16). */
  get usedIdx(): number { return this.usedIdx_; }

  /** Chains the driver has made available and the device not yet popped (0 if disabled). */
  pending(): number {
    if (!this.enabled) return 0;
    return (this.dv().getUint16(this.driverAddr + 2, true) - this.lastAvail) & 0xffff;
  }

  /**
   * Take the next available chain, or null if none. A malformed chain throws ChainError; its head is
   * consumed (return it with push(err.head, 0)). An avail idx more than `size` ahead throws
   * ChainError("avail-idx-jump", head -1) and consumes nothing.
   */
  pop(): DescriptorChain | null {
    if (!this.enabled) return null;
    const v = this.dv();
    const availIdx = v.getUint16(this.driverAddr + 2, true);
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0) return null;
    // 2.7.6 virtio 1.2: idx only moves forward by entries actually added (at most Queue Size outstanding).
    if (pending > this.size) {
      throw new ChainError("avail-idx-jump", -1, this.index, `avail idx ${availIdx}, last seen ${this.lastAvail}, size ${this.size}`);
    }
    const head = v.getUint16(this.driverAddr + 4 + 2 * (this.lastAvail % this.size), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx) {
      // avail_event: tell the driver when to notify next (2.7.10 virtio 1.2).
      const p = this.deviceAddr + 4 + 8 * this.size;
      v.setUint16(p, this.lastAvail, true);
      this.mem.dirty(p, p + 2);
    }
    const n = this.hot.walkChain(this.descAddr, this.size, head, this.scratch, this.maxSegments, this.allowIndirect);
    if (n < 0) throw new ChainError(walkErrorKind(n), head, this.index);
    const s = new DataView(this.mem.memory.buffer, this.scratch, n * SEGMENT_RECORD_BYTES);
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableBytes = 0, writableBytes = 0;
    for (let i = 0; i < n; i++) {
      const o = i * SEGMENT_RECORD_BYTES;
      const seg = { addr: s.getUint32(o, true), len: s.getUint32(o + 4, true) };
      if (s.getUint32(o + 8, true) & 2) { writable.push(seg); writableBytes += seg.len; }
      else { readable.push(seg); readableBytes += seg.len; }
    }
    return { head, readable, writable, readableBytes, writableBytes };
  }

  /** Return chain `head` to the driver with `usedLen` bytes written (used ring element + idx, dirtied). */
  push(head: number, usedLen: number): void {
    if (!this.enabled) throw new Error(`virtqueue ${this.index}: push on a disabled queue`);
    if (!Number.isInteger(head) || head < 0 || head >= this.size) throw new RangeError(`virtqueue ${this.index}: push of bad head ${head}`);
    const ni = this.hot.pushUsed(this.deviceAddr, this.size, this.usedIdx_, head, usedLen >>> 0);
    if (ni < 0) throw new Error(`virtqueue ${this.index}: used ring outside RAM`);
    this.usedIdx_ = ni;
  }

  /**
   * Should the device interrupt after its pushes? Without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT clear
   * (2.7.7). With EVENT_IDX: used_event crossed since the last call (2.7.10). Call once per batch of pushes.
   */
  wantsInterrupt(): boolean {
    if (!this.enabled) return false;
    const v = this.dv();
    const oldIdx = this.signalledUsed;
    const newIdx = this.usedIdx_;
    this.signalledUsed = newIdx;
    if (this.eventIdx) {
      const usedEvent = v.getUint16(this.driverAddr + 4 + 2 * this.size, true);
      return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
    return (v.getUint16(this.driverAddr, true) & AVAIL_F_NO_INTERRUPT) === 0;
  }

  saveState(): VirtqueueState {
    return {
      index: this.index, size: this.size, descAddr: this.descAddr, driverAddr: this.driverAddr,
      deviceAddr: this.deviceAddr, enabled: this.enabled, lastAvail: this.lastAvail, usedIdx: this.usedIdx_,
      signalledUsed: this.signalledUsed, allowIndirect: this.allowIndirect, eventIdx: this.eventIdx,
    };
  }

  /** Parse a saveState() result for this queue without changing anything (see parseVirtqueueState). */
  parseState(raw: unknown, path: string): VirtqueueState {
    return parseVirtqueueState(raw, path, { index: this.index, maxSize: this.maxSize, memSize: this.mem.size });
  }

  /** Guest RAM size in bytes (the limit every ring address is checked against). */
  get memSize(): number {
    return this.mem.size;
  }

  /** Commit a parseState() result (cannot fail). */
  applyState(s: VirtqueueState): void {
    this.size = s.size;
    this.descAddr = s.descAddr;
    this.driverAddr = s.driverAddr;
    this.deviceAddr = s.deviceAddr;
    this.allowIndirect = s.allowIndirect;
    this.eventIdx = s.eventIdx;
    this.enabled = s.enabled;
    this.lastAvail = s.lastAvail;
    this.usedIdx_ = s.usedIdx;
    this.signalledUsed = s.signalledUsed;
  }

  /** parseState + applyState. */
  restoreState(state: unknown, path = `queue ${this.index}`): void {
    this.applyState(this.parseState(state, path));
  }
}

/** What a saved queue is checked against: its index, maximum size, and the guest RAM size. */
export interface QueueLimits { index: number; maxSize: number; memSize: number }

/**
 * Parse a saved queue without changing anything. Everything a driver can write is accepted (any u16 size,
 * any address up to 2^64 on a disabled queue); an enabled queue must pass the same checks as enable().
 * Throws StateError naming the field under `path`.
 */
export function parseVirtqueueState(raw: unknown, path: string, limits: QueueLimits): VirtqueueState {
  const r = StateReader.root(path, raw);
  const addr = (k: string) => r.int(k, 0, MAX_ADDR_REG);
  const s: VirtqueueState = {
    index: r.int("index", limits.index, limits.index), size: r.u16("size"),
    descAddr: addr("descAddr"), driverAddr: addr("driverAddr"), deviceAddr: addr("deviceAddr"),
    enabled: r.bool("enabled"), lastAvail: r.u16("lastAvail"), usedIdx: r.u16("usedIdx"),
    signalledUsed: r.u16("signalledUsed"), allowIndirect: r.bool("allowIndirect"), eventIdx: r.bool("eventIdx"),
  };
  if (s.enabled) {
    const why = queueProblem(s.size, limits.maxSize, limits.memSize, s.descAddr, s.driverAddr, s.deviceAddr);
    if (why) r.fail("enabled", `an enabled queue must be valid: ${why}`);
  }
  return s;
}

/** Why a queue with these registers cannot run (null: it can). */
function queueProblem(s: number, maxSize: number, ram: number, descAddr: number, driverAddr: number, deviceAddr: number): string | null {
  if (!Number.isInteger(s) || s < 1 || s > maxSize || (s & (s - 1)) !== 0) {
    return `queue size ${s} is not a power of 2 in [1, ${maxSize}]`;
  }
  const a = Virtqueue.areaSizes(s);
  // 2.7 virtio 1.2 alignment: descriptor table 16, driver area 2, device area 4.
  if (!isAddr(descAddr) || descAddr % 16 !== 0) return `descriptor table 0x${descAddr.toString(16)} not 16-byte aligned`;
  if (!isAddr(driverAddr) || driverAddr % 2 !== 0) return `driver area 0x${driverAddr.toString(16)} not 2-byte aligned`;
  if (!isAddr(deviceAddr) || deviceAddr % 4 !== 0) return `device area 0x${deviceAddr.toString(16)} not 4-byte aligned`;
  const inside = (addr: number, len: number) => addr <= ram && len <= ram - addr;
  if (!inside(descAddr, a.desc)) return `descriptor table [0x${descAddr.toString(16)}, +${a.desc}) outside RAM`;
  if (!inside(driverAddr, a.driver)) return `driver area [0x${driverAddr.toString(16)}, +${a.driver}) outside RAM`;
  if (!inside(deviceAddr, a.device)) return `device area [0x${deviceAddr.toString(16)}, +${a.device}) outside RAM`;
  return null;
}

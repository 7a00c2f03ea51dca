import type { GuestMemory } from "../memory/guest-memory.js";
import { SEGMENT_RECORD_BYTES, walkErrorKind, type HotPath } from "../hotpath/types.js";
import { ChainError, type DescriptorChain, type Segment } from "./chain.js";

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

function isU16(x: unknown): x is number { return typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffff; }
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
    const s = this.size;
    if (!Number.isInteger(s) || s < 1 || s > this.maxSize || (s & (s - 1)) !== 0) {
      return `queue size ${s} is not a power of 2 in [1, ${this.maxSize}]`;
    }
    const a = Virtqueue.areaSizes(s);
    // 2.7 virtio 1.2 alignment: descriptor table 16, driver area 2, device area 4.
    if (!isAddr(this.descAddr) || this.descAddr % 16 !== 0) return `descriptor table 0x${this.descAddr.toString(16)} not 16-byte aligned`;
    if (!isAddr(this.driverAddr) || this.driverAddr % 2 !== 0) return `driver area 0x${this.driverAddr.toString(16)} not 2-byte aligned`;
    if (!isAddr(this.deviceAddr) || this.deviceAddr % 4 !== 0) return `device area 0x${this.deviceAddr.toString(16)} not 4-byte aligned`;
    const ram = this.mem.size;
    const inside = (addr: number, len: number) => addr <= ram && len <= ram - addr;
    if (!inside(this.descAddr, a.desc)) return `descriptor table [0x${this.descAddr.toString(16)}, +${a.desc}) outside RAM`;
    if (!inside(this.driverAddr, a.driver)) return `driver area [0x${this.driverAddr.toString(16)}, +${a.driver}) outside RAM`;
    if (!inside(this.deviceAddr, a.device)) return `device area [0x${this.deviceAddr.toString(16)}, +${a.device}) outside RAM`;
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

  /** Restore a saveState() result (validated; throws on nonsense). An enabled queue is re-checked like enable(). */
  restoreState(state: object): void {
    const s = state as Partial<VirtqueueState>;
    if (!isU16(s.size) || !isAddr(s.descAddr) || !isAddr(s.driverAddr) || !isAddr(s.deviceAddr)
      || typeof s.enabled !== "boolean" || !isU16(s.lastAvail) || !isU16(s.usedIdx)) {
      throw new TypeError(`virtqueue ${this.index}: bad saved state`);
    }
    this.size = s.size;
    this.descAddr = s.descAddr;
    this.driverAddr = s.driverAddr;
    this.deviceAddr = s.deviceAddr;
    this.allowIndirect = s.allowIndirect === true;
    this.eventIdx = s.eventIdx === true;
    this.enabled = false;
    if (s.enabled) {
      const why = this.enable();
      if (why) throw new TypeError(`virtqueue ${this.index}: saved state refused: ${why}`);
    }
    this.lastAvail = s.lastAvail;
    this.usedIdx_ = s.usedIdx;
    this.signalledUsed = isU16(s.signalledUsed) ? s.signalledUsed : s.usedIdx;
  }
}

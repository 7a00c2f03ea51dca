/**
 * Modern (virtio 1.x) virtio-pci transport, virtio spec 4.1, with every structure in one I/O BAR
 * (v86 can move I/O BARs but not memory BARs). Level INTx interrupts only (no MSI-X).
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import type { HotPath } from "../hotpath/hotpath.js";
import { Virtqueue } from "./virtqueue.js";
import type { VirtioDeviceBackend, VirtioTransportHandle } from "./device-backend.js";
import type { PciHost } from "./pci-host.js";

export const VIRTIO_PCI_VENDOR = 0x1af4;
export const VIRTIO_F_VERSION_1 = 32n;
/** Transport feature the transport itself offers and implements (2.7.5.3): indirect descriptor tables. */
export const VIRTIO_F_INDIRECT_DESC = 28n;
const TRANSPORT_FEATURES = 1n << VIRTIO_F_INDIRECT_DESC;

export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Layout of the single I/O BAR. */
export const BAR_LAYOUT = {
  size: 256,
  common: { offset: 0x00, length: 0x3c },
  isr: { offset: 0x40, length: 0x04 },
  device: { offset: 0x60, length: 0x20 },
  notify: { offset: 0x80, length: 0x40 },
  notifyMultiplier: 2,
} as const;

const CAP_COMMON = 1;
const CAP_NOTIFY = 2;
const CAP_ISR = 3;
const CAP_DEVICE = 4;

export type TransportDiagnosticKind =
  | "write-to-read-only-field"
  | "features-not-offered"
  | "features-refused"
  | "features-changed-after-features-ok"
  | "feature-select-out-of-range"
  | "status-bits-cleared"
  | "queue-select-out-of-range"
  | "queue-configured-while-enabled"
  | "queue-enable-refused"
  | "queue-disable-not-supported"
  | "notify-disabled-queue"
  | "notify-before-driver-ok"
  | "device-config-out-of-range";

export interface TransportDiagnostic {
  kind: TransportDiagnosticKind;
  message: string;
}

export interface TransportOptions {
  pciId: number;
  /** Initial I/O port of the BAR (the BIOS usually moves it). */
  port: number;
  name?: string;
  onDiagnostic?: (d: TransportDiagnostic) => void;
  /** Called after every status change, with the new status (used for events/tests). */
  onStatus?: (status: number) => void;
  /** Called when the device enters DEVICE_NEEDS_RESET, with the reason. */
  onNeedsReset?: (reason: string) => void;
}

/** A register of the common configuration structure: byte offset, width, and its accessors. */
interface Field {
  offset: number;
  size: number;
  name: string;
  get(): bigint;
  set?(value: bigint): void;
}

export class VirtioPciTransport implements VirtioTransportHandle {
  status = 0;
  negotiated = 0n;
  private driverFeatures = 0n;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private queueSelect = 0;
  private isr = 0;
  private configGeneration = 0;
  private irqRaised = false;
  /** Queues notified before DRIVER_OK (see notify()). */
  private readonly earlyNotified = new Set<number>();
  readonly queues: Virtqueue[];
  private readonly commonFields: Field[];

  constructor(
    private readonly host: PciHost,
    mem: GuestMemory,
    hot: HotPath,
    readonly device: VirtioDeviceBackend,
    private readonly options: TransportOptions,
  ) {
    const maxQueues = device.queueCount(device.offeredFeatures());
    this.queues = Array.from({ length: maxQueues }, (_, i) => new Virtqueue(mem, hot, i, device.queueMaxSize(i)));
    this.commonFields = this.buildCommonFields();
    device.attach(this);
    host.registerDevice({
      pciId: options.pciId,
      name: options.name ?? "virtio-pci",
      configSpace: buildConfigSpace(device.deviceType, options.port),
      bar: { port: options.port, size: BAR_LAYOUT.size },
      io: { read: (o, w) => this.barRead(o, w), write: (o, w, v) => this.barWrite(o, w, v) },
    });
  }

  // ---- VirtioTransportHandle -------------------------------------------------------------------

  interruptQueue(index: number): void {
    const q = this.queues[index];
    // 2.7.7: the driver may ask not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT).
    if (q && !q.wantsInterrupt()) return;
    this.raise(1);
  }

  interruptConfig(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.raise(2);
  }

  needsReset(reason: string): void {
    this.options.onNeedsReset?.(reason);
    this.status |= STATUS.DEVICE_NEEDS_RESET;
    this.options.onStatus?.(this.status);
    // 2.1.2: a device entering DEVICE_NEEDS_RESET after DRIVER_OK sends a config change notification.
    if (this.status & STATUS.DRIVER_OK) this.interruptConfig();
  }

  /** Number of queues the driver sees for the features in force. */
  get numQueues(): number {
    const features = this.status & STATUS.FEATURES_OK ? this.negotiated : this.device.offeredFeatures();
    return this.device.queueCount(features);
  }

  // ---- BAR dispatch ----------------------------------------------------------------------------

  barRead(offset: number, width: 1 | 2 | 4): number {
    const { common, isr, device, notify } = BAR_LAYOUT;
    if (offset >= common.offset && offset + width <= common.offset + common.length) {
      return this.readFields(offset - common.offset, width);
    }
    if (offset >= isr.offset && offset < isr.offset + isr.length) {
      // 4.1.4.5: reading the ISR status clears it and de-asserts the interrupt.
      const value = offset === isr.offset ? this.isr : 0;
      this.isr = 0;
      this.updateIrq();
      return value;
    }
    if (offset >= device.offset && offset < device.offset + device.length) {
      const rel = offset - device.offset;
      if (rel + width > this.device.configSize) return 0;
      return this.device.readConfig(rel, width);
    }
    if (offset >= notify.offset && offset < notify.offset + notify.length) return 0;
    return width === 4 ? 0xffffffff : (1 << (8 * width)) - 1;
  }

  barWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    const { common, isr, device, notify } = BAR_LAYOUT;
    if (offset >= common.offset && offset + width <= common.offset + common.length) {
      this.writeFields(offset - common.offset, width, value);
    } else if (offset >= isr.offset && offset < isr.offset + isr.length) {
      this.diagnose("write-to-read-only-field", `ISR status is read-only (write of 0x${value.toString(16)})`);
    } else if (offset >= device.offset && offset < device.offset + device.length) {
      const rel = offset - device.offset;
      if (rel + width > this.device.configSize) {
        this.diagnose("device-config-out-of-range", `device config write at ${rel} (+${width}) past its ${this.device.configSize} bytes`);
        return;
      }
      this.device.writeConfig(rel, width, value);
    } else if (offset >= notify.offset && offset < notify.offset + notify.length) {
      this.notify(value & 0xffff);
    }
  }

  // ---- notify ----------------------------------------------------------------------------------

  private notify(index: number): void {
    const q = this.queues[index];
    // 4.1.4.4: a notification names a queue; one that does not exist or is not enabled is ignored.
    if (!q || index >= this.numQueues || !q.enabled) {
      this.diagnose("notify-disabled-queue", `notify for queue ${index}, which is not enabled`);
      return;
    }
    if (!(this.status & STATUS.DRIVER_OK)) {
      // 3.1.1: the driver MUST NOT notify before DRIVER_OK. Linux's balloon does (its first stats
      // buffer), so the notification is kept and delivered when the device goes live.
      this.diagnose("notify-before-driver-ok", `notify for queue ${index} before DRIVER_OK; delivered at DRIVER_OK`);
      this.earlyNotified.add(index);
      return;
    }
    if (this.status & STATUS.DEVICE_NEEDS_RESET) return;
    this.device.notify(index);
  }

  // ---- interrupts ------------------------------------------------------------------------------

  private raise(bits: number): void {
    this.isr |= bits;
    this.updateIrq();
  }

  private updateIrq(): void {
    const want = this.isr !== 0;
    if (want === this.irqRaised) return;
    this.irqRaised = want;
    if (want) this.host.raiseIrq(this.options.pciId);
    else this.host.lowerIrq(this.options.pciId);
  }

  // ---- common configuration --------------------------------------------------------------------

  private selected(): Virtqueue | undefined {
    return this.queueSelect < this.numQueues ? this.queues[this.queueSelect] : undefined;
  }

  private buildCommonFields(): Field[] {
    const ro = (offset: number, size: number, name: string, get: () => bigint | number): Field => ({
      offset, size, name, get: () => BigInt(get()),
    });
    const rw = (offset: number, size: number, name: string, get: () => bigint | number, set: (v: bigint) => void): Field => ({
      offset, size, name, get: () => BigInt(get()), set,
    });
    const queueField = (offset: number, size: number, name: string, get: (q: Virtqueue) => number, set: (q: Virtqueue, v: number) => void): Field =>
      rw(offset, size, name, () => {
        const q = this.selected();
        return q ? get(q) : 0;
      }, (v) => {
        const q = this.selected();
        if (!q) {
          this.diagnose("queue-select-out-of-range", `${name} written with queue_select ${this.queueSelect} >= num_queues ${this.numQueues}`);
          return;
        }
        // 4.1.4.3.2: the driver MUST configure a queue before enabling it (and not change it after).
        if (q.enabled) {
          this.diagnose("queue-configured-while-enabled", `${name} of queue ${q.index} written while enabled`);
          return;
        }
        set(q, Number(v));
      });
    return [
      rw(0x00, 4, "device_feature_select", () => this.deviceFeatureSelect, (v) => { this.deviceFeatureSelect = Number(v); }),
      ro(0x04, 4, "device_feature", () => this.featureWord(this.offered(), this.deviceFeatureSelect)),
      rw(0x08, 4, "driver_feature_select", () => this.driverFeatureSelect, (v) => { this.driverFeatureSelect = Number(v); }),
      rw(0x0c, 4, "driver_feature", () => this.featureWord(this.driverFeatures, this.driverFeatureSelect), (v) => this.writeDriverFeatures(v)),
      // No MSI-X: VIRTIO_MSI_NO_VECTOR, and writes of vectors are ignored (4.1.4.3).
      rw(0x10, 2, "config_msix_vector", () => 0xffff, () => {}),
      ro(0x12, 2, "num_queues", () => this.numQueues),
      rw(0x14, 1, "device_status", () => this.status, (v) => this.writeStatus(Number(v) & 0xff)),
      ro(0x15, 1, "config_generation", () => this.configGeneration),
      rw(0x16, 2, "queue_select", () => this.queueSelect, (v) => { this.queueSelect = Number(v); }),
      queueField(0x18, 2, "queue_size", (q) => q.size, (q, v) => { q.size = v; }),
      rw(0x1a, 2, "queue_msix_vector", () => 0xffff, () => {}),
      rw(0x1c, 2, "queue_enable", () => (this.selected()?.enabled ? 1 : 0), (v) => this.writeQueueEnable(Number(v))),
      ro(0x1e, 2, "queue_notify_off", () => (this.selected() ? this.queueSelect : 0)),
      queueField(0x20, 8, "queue_desc", (q) => q.descAddr, (q, v) => { q.descAddr = v; }),
      queueField(0x28, 8, "queue_driver", (q) => q.driverAddr, (q, v) => { q.driverAddr = v; }),
      queueField(0x30, 8, "queue_device", (q) => q.deviceAddr, (q, v) => { q.deviceAddr = v; }),
      ro(0x38, 2, "queue_notify_data", () => 0),
      ro(0x3a, 2, "queue_reset", () => 0),
    ];
  }

  private offered(): bigint {
    return this.device.offeredFeatures() | TRANSPORT_FEATURES;
  }

  private featureWord(features: bigint, select: number): number {
    if (select > 1) return 0;
    return Number((features >> BigInt(32 * select)) & 0xffffffffn);
  }

  /** Reads any width at any offset, byte by byte from the fields it overlaps. */
  private readFields(offset: number, width: number): number {
    let value = 0;
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const f = this.commonFields.find((x) => at >= x.offset && at < x.offset + x.size);
      const byte = f ? Number((f.get() >> BigInt(8 * (at - f.offset))) & 0xffn) : 0;
      value |= byte << (8 * i);
    }
    return value >>> 0;
  }

  /** Writes merge into each overlapped field (so a 64-bit address may be written as two halves). */
  private writeFields(offset: number, width: number, value: number): void {
    for (const f of this.commonFields) {
      const lo = Math.max(offset, f.offset);
      const hi = Math.min(offset + width, f.offset + f.size);
      if (lo >= hi) continue;
      if (!f.set) {
        this.diagnose("write-to-read-only-field", `${f.name} is read-only (write of 0x${(value >>> 0).toString(16)})`);
        continue;
      }
      let merged = f.get();
      for (let at = lo; at < hi; at++) {
        const byte = BigInt((value >>> (8 * (at - offset))) & 0xff);
        const shift = BigInt(8 * (at - f.offset));
        merged = (merged & ~(0xffn << shift)) | (byte << shift);
      }
      f.set(merged);
    }
  }

  private writeDriverFeatures(word: bigint): void {
    if (this.driverFeatureSelect > 1) {
      this.diagnose("feature-select-out-of-range", `driver_feature_select ${this.driverFeatureSelect}: only 64 feature bits exist`);
      return;
    }
    // 3.1.1: the driver MUST NOT change features after FEATURES_OK.
    if (this.status & STATUS.FEATURES_OK) {
      this.diagnose("features-changed-after-features-ok", "driver_feature written after FEATURES_OK; ignored");
      return;
    }
    const shift = BigInt(32 * this.driverFeatureSelect);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (word << shift);
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    // 2.1.1: the driver MUST NOT clear a device status bit (only a reset clears them).
    if ((this.status & ~value & ~STATUS.DEVICE_NEEDS_RESET) !== 0) {
      this.diagnose("status-bits-cleared", `status 0x${this.status.toString(16)} -> 0x${value.toString(16)} clears bits without a reset`);
    }
    let next = value & ~STATUS.DEVICE_NEEDS_RESET;
    if (next & STATUS.FEATURES_OK && !(this.status & STATUS.FEATURES_OK)) {
      next = this.acceptFeatures() ? next : next & ~STATUS.FEATURES_OK;
    }
    const becameLive = next & STATUS.DRIVER_OK && !(this.status & STATUS.DRIVER_OK);
    this.status = next | (this.status & STATUS.DEVICE_NEEDS_RESET);
    this.options.onStatus?.(this.status);
    if (becameLive && this.status & STATUS.FEATURES_OK) {
      this.device.activate(this.negotiated, this.queues.slice(0, this.numQueues));
      for (const index of this.earlyNotified) this.device.notify(index);
    }
    if (becameLive) this.earlyNotified.clear();
  }

  /** 3.1.1 step 5-6: FEATURES_OK stays clear if the driver accepted what was not offered or the device refuses the set. */
  private acceptFeatures(): boolean {
    const extra = this.driverFeatures & ~this.offered();
    if (extra !== 0n) {
      this.diagnose("features-not-offered", `driver accepted feature bits never offered: 0x${extra.toString(16)}`);
      return false;
    }
    const refusal = this.device.validateFeatures(this.driverFeatures & ~TRANSPORT_FEATURES);
    if (refusal) {
      this.diagnose("features-refused", refusal);
      return false;
    }
    this.negotiated = this.driverFeatures;
    const indirect = (this.negotiated & TRANSPORT_FEATURES) !== 0n;
    for (const q of this.queues) q.allowIndirect = indirect;
    return true;
  }

  private writeQueueEnable(v: number): void {
    const q = this.selected();
    if (!q) {
      this.diagnose("queue-select-out-of-range", `queue_enable written with queue_select ${this.queueSelect} >= num_queues ${this.numQueues}`);
      return;
    }
    if (v === 0) {
      // 4.1.4.3.2: without VIRTIO_F_RING_RESET the driver MUST NOT write 0 to queue_enable.
      this.diagnose("queue-disable-not-supported", `queue_enable 0 written for queue ${q.index}`);
      return;
    }
    if (q.enabled) return;
    const refusal = q.enable();
    if (refusal) {
      this.diagnose("queue-enable-refused", `queue ${q.index} not enabled: ${refusal}`);
      this.needsReset(`queue ${q.index}: ${refusal}`);
    }
  }

  /** 4.1.4.3.1 / 2.4: writing 0 to device_status resets the device and every queue. */
  reset(): void {
    this.status = 0;
    this.negotiated = 0n;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.queueSelect = 0;
    this.earlyNotified.clear();
    for (const q of this.queues) q.reset();
    this.isr = 0;
    this.updateIrq();
    this.device.reset();
    this.options.onStatus?.(this.status);
  }

  private diagnose(kind: TransportDiagnosticKind, message: string): void {
    this.options.onDiagnostic?.({ kind, message });
  }

  // ---- persistence -----------------------------------------------------------------------------

  saveState(): TransportState {
    return {
      status: this.status,
      negotiated: this.negotiated.toString(),
      driverFeatures: this.driverFeatures.toString(),
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      isr: this.isr,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.saveState()),
    };
  }

  restoreState(s: TransportState): void {
    this.status = s.status;
    this.negotiated = BigInt(s.negotiated);
    this.driverFeatures = BigInt(s.driverFeatures);
    this.deviceFeatureSelect = s.deviceFeatureSelect;
    this.driverFeatureSelect = s.driverFeatureSelect;
    this.queueSelect = s.queueSelect;
    this.configGeneration = s.configGeneration;
    s.queues.forEach((qs, i) => this.queues[i]?.restoreState(qs));
    this.isr = s.isr;
    // The restored PIC holds the line level already; only our bookkeeping follows it.
    this.irqRaised = this.isr !== 0;
  }
}

export interface TransportState {
  status: number;
  negotiated: string;
  driverFeatures: string;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  queueSelect: number;
  isr: number;
  configGeneration: number;
  queues: ReturnType<Virtqueue["saveState"]>[];
}

/** PCI type-0 header plus the virtio vendor capabilities (4.1.4), all pointing into BAR 0. */
export function buildConfigSpace(deviceType: number, port: number): Uint8Array {
  const space = new Uint8Array(256);
  const dv = new DataView(space.buffer);
  dv.setUint16(0x00, VIRTIO_PCI_VENDOR, true);
  dv.setUint16(0x02, 0x1040 + deviceType, true); // 4.1.2: modern-only device id
  dv.setUint16(0x06, 0x0010, true); // status: capabilities list present
  space[0x08] = 1; // 4.1.2.1: revision 1 for a modern-only device
  space[0x0b] = 0xff; // class: other (as QEMU's balloon)
  dv.setUint32(0x10, (port & ~3) | 1, true); // BAR0: I/O space
  dv.setUint16(0x2c, VIRTIO_PCI_VENDOR, true);
  dv.setUint16(0x2e, 0x40 + deviceType, true); // 4.1.2: subsystem id >= 0x40 for modern devices
  space[0x3d] = 1; // interrupt pin INTA#
  const caps = [
    { type: CAP_COMMON, ...BAR_LAYOUT.common },
    { type: CAP_NOTIFY, ...BAR_LAYOUT.notify },
    { type: CAP_ISR, ...BAR_LAYOUT.isr },
    { type: CAP_DEVICE, ...BAR_LAYOUT.device },
  ];
  space[0x34] = 0x40;
  let at = 0x40;
  caps.forEach((cap, i) => {
    const len = cap.type === CAP_NOTIFY ? 20 : 16;
    const next = i === caps.length - 1 ? 0 : at + 20;
    space[at] = 0x09; // vendor-specific capability
    space[at + 1] = next;
    space[at + 2] = len;
    space[at + 3] = cap.type;
    space[at + 4] = 0; // BAR 0
    dv.setUint32(at + 8, cap.offset, true);
    dv.setUint32(at + 12, cap.length, true);
    if (cap.type === CAP_NOTIFY) dv.setUint32(at + 16, BAR_LAYOUT.notifyMultiplier, true);
    at += 20;
  });
  return space;
}

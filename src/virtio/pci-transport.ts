/**
 * Modern (virtio 1.x) virtio-pci transport, virtio spec 4.1, with every structure in one I/O BAR
 * (v86 can move I/O BARs but not memory BARs). Level INTx interrupts only (no MSI-X).
 */
import type { GuestMemory } from "../memory/guest-memory.js";
import type { HotPath } from "../hotpath/hotpath.js";
import { parseVirtqueueState, Virtqueue, type QueueLimits, type VirtqueueState } from "./virtqueue.js";
import type { VirtioDeviceBackend, VirtioTransportHandle } from "./device-backend.js";
import type { PciHost } from "./pci-host.js";
import { BAR_LAYOUT, buildConfigSpace } from "./pci-config-space.js";

export { BAR_LAYOUT, VIRTIO_PCI_VENDOR } from "./pci-config-space.js";
import { StateError, StateReader } from "./state.js";

export const VIRTIO_F_VERSION_1 = 32n;
/** Transport feature the transport itself offers and implements (2.7.5.3): indirect descriptor tables. */
export const VIRTIO_F_INDIRECT_DESC = 28n;
export const TRANSPORT_FEATURES = 1n << VIRTIO_F_INDIRECT_DESC;

export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Status bits a driver may set (2.1); DEVICE_NEEDS_RESET is the device's, bits 4-5 are reserved. */
const DRIVER_STATUS_BITS = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK | STATUS.FEATURES_OK | STATUS.FAILED;


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
  | "notify-while-needs-reset"
  | "notify-value-mismatch"
  | "device-config-out-of-range"
  | "driver-ok-without-features-ok"
  | "features-ok-without-driver"
  | "driver-set-needs-reset"
  | "status-reserved-bits"
  | "bar-write-unused"
  | "field-access-not-natural"
  | "queue-enable-bad-value"
  | "queue-address-too-large"
  | "queue-enabled-past-features";

/** Every transport kind, once (the conformance table and tests iterate it). */
export const TRANSPORT_DIAGNOSTIC_KINDS: readonly TransportDiagnosticKind[] = [
  "write-to-read-only-field", "features-not-offered", "features-refused", "features-changed-after-features-ok",
  "feature-select-out-of-range", "status-bits-cleared", "queue-select-out-of-range", "queue-configured-while-enabled",
  "queue-enable-refused", "queue-disable-not-supported", "notify-disabled-queue", "notify-before-driver-ok",
  "notify-while-needs-reset", "notify-value-mismatch", "device-config-out-of-range", "driver-ok-without-features-ok",
  "features-ok-without-driver", "driver-set-needs-reset", "status-reserved-bits", "bar-write-unused",
  "field-access-not-natural", "queue-enable-bad-value", "queue-address-too-large", "queue-enabled-past-features",
];

export interface TransportDiagnostic {
  kind: TransportDiagnosticKind;
  message: string;
  detail?: Record<string, unknown>;
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
    const within = (r: { offset: number; length: number }) => offset >= r.offset && offset + width <= r.offset + r.length;
    const hex = `0x${(value >>> 0).toString(16)}`;
    if (within(common)) {
      this.writeFields(offset - common.offset, width, value);
    } else if (within(isr)) {
      this.diagnose("write-to-read-only-field", `ISR status is read-only (write of ${hex})`);
    } else if (offset >= device.offset && offset < device.offset + device.length) {
      const rel = offset - device.offset;
      if (rel + width > this.device.configSize) {
        this.diagnose("device-config-out-of-range", `device config write at ${rel} (+${width}) past its ${this.device.configSize} bytes`);
        return;
      }
      this.device.writeConfig(rel, width, value);
    } else if (within(notify)) {
      this.notifyWrite(offset - notify.offset, width, value);
    } else {
      // 4.1.4: only the capability structures give BAR bytes a meaning; gaps, the area past the last
      // structure and accesses crossing a structure's end are nobody's register.
      this.diagnose("bar-write-unused", `${width}-byte write of ${hex} at BAR offset 0x${offset.toString(16)} touches no register; ignored`, { offset, width, value: value >>> 0 });
    }
  }

  // ---- notify ----------------------------------------------------------------------------------

  /**
   * 4.1.4.4 / 4.1.5.2: the driver notifies queue i by writing the 16-bit index i at
   * notify.offset + queue_notify_off(i) * multiplier. The address names the queue (as in QEMU).
   */
  private notifyWrite(rel: number, width: number, value: number): void {
    const m = BAR_LAYOUT.notifyMultiplier;
    if (rel % m !== 0 || width !== 2) {
      this.diagnose("field-access-not-natural", `${width}-byte notify write at notify offset ${rel}: a notification is one 16-bit write at a queue's notify address; ignored`, { offset: rel, width });
      return;
    }
    const index = rel / m;
    if ((value & 0xffff) !== index) {
      this.diagnose("notify-value-mismatch", `notify address of queue ${index} written with ${value & 0xffff}; queue ${index} is notified (the address names the queue)`, { queue: index, value: value & 0xffff });
    }
    this.notify(index);
  }

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
    if (this.status & STATUS.DEVICE_NEEDS_RESET) {
      this.diagnose("notify-while-needs-reset", `notify for queue ${index} while DEVICE_NEEDS_RESET is set; dropped (the device needs a reset first)`, { queue: index });
      return;
    }
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
        // Registers above 2^53 were rounded when written (diagnosed then); clamp so BigInt() never throws.
        return q ? BigInt(Math.min(get(q), 2 ** 64 - 2048)) : 0;
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
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
          // The register keeps the value as a double (so a snapshot stays restorable); no guest-physical
          // address of this machine comes near it, so enable() will refuse the queue.
          this.diagnose("queue-address-too-large", `${name} of queue ${q.index} set to 0x${v.toString(16)}, past 2^53: no guest-physical address is that large; the queue cannot be enabled`, { queue: q.index, field: name, value: v.toString() });
        }
        set(q, Number(v));
      });
    return [
      rw(0x00, 4, "device_feature_select", () => this.deviceFeatureSelect, (v) => { this.deviceFeatureSelect = Number(v) >>> 0; }),
      ro(0x04, 4, "device_feature", () => this.featureWord(this.offered(), this.deviceFeatureSelect)),
      rw(0x08, 4, "driver_feature_select", () => this.driverFeatureSelect, (v) => { this.driverFeatureSelect = Number(v) >>> 0; }),
      rw(0x0c, 4, "driver_feature", () => this.featureWord(this.driverFeatures, this.driverFeatureSelect), (v) => this.writeDriverFeatures(v)),
      // No MSI-X: VIRTIO_MSI_NO_VECTOR, and writes of vectors are ignored (4.1.4.3).
      rw(0x10, 2, "config_msix_vector", () => 0xffff, () => {}),
      ro(0x12, 2, "num_queues", () => this.numQueues),
      rw(0x14, 1, "device_status", () => this.status, (v) => this.writeStatus(Number(v) & 0xff)),
      ro(0x15, 1, "config_generation", () => this.configGeneration),
      rw(0x16, 2, "queue_select", () => this.queueSelect, (v) => { this.queueSelect = Number(v) & 0xffff; }),
      queueField(0x18, 2, "queue_size", (q) => q.size, (q, v) => { q.size = v & 0xffff; }),
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

  /**
   * 4.1.3.1: each field is accessed with its own width; a 64-bit field may be written as two 32-bit halves.
   * A narrower write inside one field is diagnosed and merged; a write covering several fields (or a gap)
   * is diagnosed and ignored, so one stray access never changes two registers.
   */
  private writeFields(offset: number, width: number, value: number): void {
    const hit = this.commonFields.filter((f) => offset < f.offset + f.size && f.offset < offset + width);
    const f0 = hit[0];
    if (hit.length !== 1 || !f0 || offset + width > f0.offset + f0.size) {
      this.diagnose("field-access-not-natural", `${width}-byte write at common config offset 0x${offset.toString(16)} covers ${hit.map((f) => f.name).join(" + ") || "no field"}; ignored`, { offset, width, value: value >>> 0 });
      return;
    }
    const natural = width === f0.size || (f0.size === 8 && width === 4 && (offset - f0.offset) % 4 === 0);
    if (!natural) {
      this.diagnose("field-access-not-natural", `${width}-byte write into the ${f0.size}-byte field ${f0.name}; merged`, { field: f0.name, offset, width });
    }
    for (const f of hit) {
      const lo = Math.max(offset, f.offset);
      const hi = Math.min(offset + width, f.offset + f.size);
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
    const hex = (v: number) => `0x${v.toString(16)}`;
    // 2.1.1: the driver MUST NOT clear a device status bit (only a reset clears them).
    if ((this.status & ~value & DRIVER_STATUS_BITS) !== 0) {
      this.diagnose("status-bits-cleared", `status ${hex(this.status)} -> ${hex(value)} clears bits without a reset`);
    }
    if (value & STATUS.DEVICE_NEEDS_RESET && !(this.status & STATUS.DEVICE_NEEDS_RESET)) {
      this.diagnose("driver-set-needs-reset", `status write ${hex(value)} sets DEVICE_NEEDS_RESET, which only the device sets; ignored`);
    }
    if (value & ~(DRIVER_STATUS_BITS | STATUS.DEVICE_NEEDS_RESET)) {
      this.diagnose("status-reserved-bits", `status write ${hex(value)} sets reserved bits ${hex(value & 0x30)}; ignored`);
    }
    // Bits are only ever added: what the driver clears without a reset stays set (it was diagnosed).
    let next = (value & DRIVER_STATUS_BITS) | (this.status & DRIVER_STATUS_BITS);
    if (next & STATUS.FEATURES_OK && !(this.status & STATUS.FEATURES_OK)) {
      if ((next & (STATUS.ACKNOWLEDGE | STATUS.DRIVER)) !== (STATUS.ACKNOWLEDGE | STATUS.DRIVER)) {
        this.diagnose("features-ok-without-driver", `FEATURES_OK set with status ${hex(value)}, before ACKNOWLEDGE and DRIVER`);
      }
      next = this.acceptFeatures() ? next : next & ~STATUS.FEATURES_OK;
    }
    if (next & STATUS.DRIVER_OK && !(this.status & STATUS.DRIVER_OK) && !(next & STATUS.FEATURES_OK)) {
      this.diagnose("driver-ok-without-features-ok", `DRIVER_OK set (status ${hex(value)}) without FEATURES_OK: the device goes live only once both are set`);
    }
    const live = (st: number) => (st & (STATUS.DRIVER_OK | STATUS.FEATURES_OK)) === (STATUS.DRIVER_OK | STATUS.FEATURES_OK);
    const becameLive = live(next) && !live(this.status);
    this.status = next | (this.status & STATUS.DEVICE_NEEDS_RESET);
    this.options.onStatus?.(this.status);
    if (becameLive) {
      // The device sees its own features; transport bits (INDIRECT_DESC) are the transport's business.
      this.device.activate(this.negotiated & ~TRANSPORT_FEATURES, this.queues.slice(0, this.numQueues));
      const early = [...this.earlyNotified];
      this.earlyNotified.clear();
      for (const index of early) this.device.notify(index);
    }
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
      this.diagnose("features-refused", `FEATURES_OK refused: ${refusal}`, { accepted: `0x${this.driverFeatures.toString(16)}` });
      return false;
    }
    this.negotiated = this.driverFeatures;
    const indirect = (this.negotiated & TRANSPORT_FEATURES) !== 0n;
    for (const q of this.queues) q.allowIndirect = indirect;
    // A queue enabled before FEATURES_OK (while num_queues followed the offer) that the accepted features
    // do not have would be live state no driver can reach, and a snapshot the restore gate refuses.
    const count = this.device.queueCount(this.negotiated);
    for (const q of this.queues.slice(count)) {
      if (!q.enabled) continue;
      this.diagnose("queue-enabled-past-features", `queue ${q.index} was enabled before FEATURES_OK but the accepted features have ${count} queues; it is disabled`, { queue: q.index, queues: count });
      q.reset();
    }
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
    if (v !== 1) {
      this.diagnose("queue-enable-bad-value", `queue_enable ${v} written for queue ${q.index}: only 1 enables a queue; ignored`, { queue: q.index, value: v });
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

  private diagnose(kind: TransportDiagnosticKind, message: string, detail?: Record<string, unknown>): void {
    this.options.onDiagnostic?.(detail ? { kind, message, detail } : { kind, message });
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
      earlyNotified: [...this.earlyNotified],
      queues: this.queues.map((q) => q.saveState()),
    };
  }

  /** Parse a saved transport state against this transport without changing anything (see parseTransportState). */
  parseState(raw: unknown, path = "transport"): TransportState {
    return parseTransportState(raw, path, {
      offered: this.device.offeredFeatures(),
      validate: (f) => this.device.validateFeatures(f, { dryRun: true }),
      queueCount: (f) => this.device.queueCount(f),
      queues: this.queues.map((q) => ({ index: q.index, maxSize: q.maxSize, memSize: q.memSize })),
    });
  }

  /** parseState + applyState (the transport alone; a whole balloon restores through src/host/snapshot.ts). */
  restoreState(raw: unknown): void {
    this.applyState(this.parseState(raw));
  }

  /** Commit a parseState() result (cannot fail). */
  applyState(s: TransportState): void {
    this.status = s.status;
    this.negotiated = BigInt(s.negotiated);
    this.driverFeatures = BigInt(s.driverFeatures);
    this.deviceFeatureSelect = s.deviceFeatureSelect;
    this.driverFeatureSelect = s.driverFeatureSelect;
    this.queueSelect = s.queueSelect;
    this.configGeneration = s.configGeneration;
    this.earlyNotified.clear();
    for (const i of s.earlyNotified) this.earlyNotified.add(i);
    s.queues.forEach((qs, i) => this.queues[i]!.applyState(qs));
    this.isr = s.isr;
    // The restored PIC holds the line level already; only our bookkeeping follows it.
    this.irqRaised = this.isr !== 0;
  }

  /** The device goes live exactly when DRIVER_OK and FEATURES_OK are both set. */
  get live(): boolean {
    return (this.status & (STATUS.DRIVER_OK | STATUS.FEATURES_OK)) === (STATUS.DRIVER_OK | STATUS.FEATURES_OK);
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
  /** Queues notified before DRIVER_OK, delivered when the device goes live. */
  earlyNotified: number[];
  queues: VirtqueueState[];
}

/** What a saved transport is checked against: the device's offer and rules, and its queues. */
export interface TransportLimits {
  /** Device features offered (without the transport's own). */
  offered: bigint;
  /** The device's FEATURES_OK rules (reason to refuse, or null). */
  validate(accepted: bigint): string | null;
  queueCount(features: bigint): number;
  queues: readonly QueueLimits[];
}

/**
 * Parse a saved transport state without changing anything: every register in the range a driver can
 * reach, status made of driver bits (+ DEVICE_NEEDS_RESET), negotiated features a subset of what is
 * offered and accepted by the device's rules, one saved queue per queue. Throws StateError.
 */
export function parseTransportState(raw: unknown, path: string, limits: TransportLimits): TransportState {
  const r: StateReader = StateReader.root(path, raw);
  const status = r.u8("status");
  if (status & ~(DRIVER_STATUS_BITS | STATUS.DEVICE_NEEDS_RESET)) r.fail("status", `reserved bits set (0x${status.toString(16)})`);
  const negotiated = r.u64("negotiated");
  const driverFeatures = r.u64("driverFeatures");
  const featuresOk = (status & STATUS.FEATURES_OK) !== 0;
  if (featuresOk) {
    const extra = negotiated & ~(limits.offered | TRANSPORT_FEATURES);
    if (extra) r.fail("negotiated", `bits never offered: 0x${extra.toString(16)}`);
    const refusal = limits.validate(negotiated & ~TRANSPORT_FEATURES);
    if (refusal) r.fail("negotiated", `a set the device refuses: ${refusal}`);
    if (negotiated !== driverFeatures) r.fail("driverFeatures", "differs from the negotiated features after FEATURES_OK");
  } else if (negotiated !== 0n) {
    r.fail("negotiated", "features negotiated without FEATURES_OK");
  }
  const isr = r.int("isr", 0, 3);
  const queuesRaw = r.array("queues");
  if (queuesRaw.length !== limits.queues.length) r.fail("queues", `${queuesRaw.length} queues saved, this device has ${limits.queues.length}`);
  const queues = limits.queues.map((q, i) => parseVirtqueueState(queuesRaw[i], `${path}.queues[${i}]`, q));
  const indirect = (negotiated & TRANSPORT_FEATURES) !== 0n;
  const numQueues = limits.queueCount(featuresOk ? negotiated : limits.offered);
  queues.forEach((q, i) => {
    const at = `${path}.queues[${i}]`;
    if (q.allowIndirect && !indirect) throw new StateError(`${at}.allowIndirect`, "set without VIRTIO_F_INDIRECT_DESC negotiated");
    if (q.eventIdx) throw new StateError(`${at}.eventIdx`, "VIRTIO_F_EVENT_IDX is never offered");
    if (q.enabled && i >= numQueues) throw new StateError(`${at}.enabled`, `queue ${i} does not exist with these features (${numQueues} queues)`);
  });
  const live = (status & (STATUS.DRIVER_OK | STATUS.FEATURES_OK)) === (STATUS.DRIVER_OK | STATUS.FEATURES_OK);
  const earlyRaw = r.raw.earlyNotified === undefined ? [] : r.array("earlyNotified");
  if (earlyRaw.length > 0 && live) r.fail("earlyNotified", "early notifications are delivered when the device goes live; none can be pending after it");
  const earlyNotified = earlyRaw.map((x, i) => {
    // Bounded by the queues that exist, not by num_queues: FEATURES_OK may shrink it after the notify.
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0 || x >= queues.length || !queues[x]!.enabled) {
      throw new StateError(`${path}.earlyNotified[${i}]`, "not an enabled queue");
    }
    return x;
  });
  return {
    status, negotiated: negotiated.toString(), driverFeatures: driverFeatures.toString(),
    deviceFeatureSelect: r.u32("deviceFeatureSelect"), driverFeatureSelect: r.u32("driverFeatureSelect"),
    queueSelect: r.u16("queueSelect"), isr, configGeneration: r.u8("configGeneration"),
    earlyNotified: [...new Set(earlyNotified)], queues,
  };
}

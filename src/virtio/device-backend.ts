import type { Virtqueue } from "./virtqueue.js";

/**
 * What a virtio device model gives the virtio-pci transport, and what the transport gives back.
 * The transport owns PCI config space, the common/notify/ISR/device-config windows, feature
 * negotiation, status and the queues' registers; the device owns feature meaning and queue work.
 */
export interface VirtioDeviceBackend {
  /** virtio device type (5 = balloon); the PCI device id is 0x1040 + this. */
  readonly deviceType: number;
  /** Size in bytes of the device-specific config structure. */
  readonly configSize: number;
  /** Features offered (64 bits, VERSION_1 included). */
  offeredFeatures(): bigint;
  /**
   * Called when the driver sets FEATURES_OK; return a reason to refuse (status bit then stays clear).
   * `dryRun`: only answer (a saved state is being checked), no events, no state change.
   */
  validateFeatures(accepted: bigint, opts?: { dryRun?: boolean }): string | null;
  /** Number of queues for the accepted features, and the maximum size of queue i. */
  queueCount(accepted: bigint): number;
  queueMaxSize(index: number): number;
  /** Device config read/write, offset within the device config, width 1/2/4. */
  readConfig(offset: number, width: 1 | 2 | 4): number;
  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void;
  /** Bound to the transport once, before any other call. */
  attach(transport: VirtioTransportHandle): void;
  /** Driver set DRIVER_OK: queues are live with the accepted features. */
  activate(accepted: bigint, queues: readonly Virtqueue[]): void;
  /** Driver notified queue `index` (already checked to exist and be enabled). */
  notify(index: number): void;
  /** Device reset (status written 0, or transport reset): drop all queue state. */
  reset(): void;
}

/** What the device may ask of the transport. */
export interface VirtioTransportHandle {
  /** Raise the used-buffer interrupt for queue `index` (transport honours suppression flags). */
  interruptQueue(index: number): void;
  /** Raise a configuration-change interrupt (config generation is bumped). */
  interruptConfig(): void;
  /** Set DEVICE_NEEDS_RESET and raise a config interrupt; `reason` goes to diagnostics. */
  needsReset(reason: string): void;
  /** Currently negotiated features (0n before FEATURES_OK). */
  readonly negotiated: bigint;
}

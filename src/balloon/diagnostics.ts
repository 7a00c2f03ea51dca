/**
 * Named diagnostics: one kind per bad-input rule. The device never throws on guest input (never trust
 * the guest: a clear diagnosis and a safe refusal, not a crash); it emits one of these and carries on. `CONFORMANCE` says, for each kind, which rule the driver (or host) broke, quoting the spec.
 */

import type { ChainErrorKind } from "../virtio/chain.js";
import type { TransportDiagnosticKind } from "../virtio/pci-transport.js";

/** Kinds of descriptor-chain errors, passed through unchanged from the virtqueue's `ChainError.kind`. */
export type ChainDiagnosticKind = ChainErrorKind;

export type BalloonDiagnosticKind =
  // inflate / deflate
  | "pfn-buffer-misaligned"
  | "pfn-buffer-empty"
  | "pfn-out-of-range"
  | "too-many-pfns"
  | "pfn-list-too-long"
  | "request-inflates-own-buffer"
  | "bitmap-too-short"
  | "unexpected-writable"
  | "unexpected-readable"
  | "inflate-already-inflated"
  | "deflate-not-inflated"
  // config
  | "actual-above-target"
  | "actual-above-ram"
  | "actual-above-inflated"
  | "write-to-read-only-field"
  | "poison-val-changed-while-live"
  | "poison-val-without-feature"
  | "poison-val-not-byte-pattern"
  // queues
  | "notify-disabled-queue"
  | "queue-too-small"
  | "chain-error"
  | "device-internal-error"
  // stats
  | "stats-buffer-misaligned"
  | "stats-extra-buffer"
  // hinting
  | "hint-cmd-id-bad-size"
  | "hint-cmd-id-repeated"
  | "hint-cmd-id-mismatch"
  | "hint-pages-ignored"
  // reporting / hinting ranges
  | "report-without-pages"
  | "range-not-page-aligned"
  | "ranges-overlap"
  // host side
  | "target-above-ram"
  | "stats-interval-out-of-range"
  | "offer-dependency";

/** Every kind a diagnostic can have: the device's, the descriptor-chain walker's and the transport's. */
export type DiagnosticKind = BalloonDiagnosticKind | ChainDiagnosticKind | TransportDiagnosticKind;

export type DiagnosticSeverity =
  /** the driver broke a MUST of the spec */
  | "violation"
  /** legal or tolerated, but suspicious or outside what Linux does */
  | "warning"
  /** the host (API user) asked for something impossible; clamped or refused */
  | "host"
  /** the driver broke a MUST the way a widespread driver (Linux) does; the device copes, named so it is seen */
  | "tolerated";

export interface BalloonDiagnostic {
  /** A balloon kind, a chain error kind (from the virtqueue), or a transport kind (forwarded by src/host/attach.ts). */
  kind: DiagnosticKind;
  message: string;
  /** Queue index the request came from, when there is one. */
  queue?: number;
  severity: DiagnosticSeverity;
  /** Machine-readable facts (first bad PFN, lengths, ...). JSON-compatible. */
  detail: Record<string, unknown>;
  /** Clock time (ms) when it was emitted. */
  time: number;
}

export interface ConformanceRule {
  severity: DiagnosticSeverity;
  /** Spec section the rule comes from. */
  section: string;
  /** The rule, quoted (or, for device limits, stated). */
  rule: string;
}

const DEVOP = "virtio 1.2 §5.5.6 Device Operation";
const INIT_INFLATE = "virtio balloon DEVICE_INIT patch v3, Device Initialized Pages on Inflate, driver requirements";
const STATUS_DRV = "virtio 1.2 §2.1.1 Driver Requirements: Device Status Field";
const INIT_DRV = "virtio 1.2 §3.1.1 Driver Requirements: Device Initialization";
const COMMON_DRV = "virtio 1.2 §4.1.4.3.2 Driver Requirements: Common configuration structure layout";
const PCI_ACCESS = "virtio 1.2 §4.1.3.1 Driver Requirements: PCI Device Layout";
const DESC = "virtio 1.2 §2.7.5 The Virtqueue Descriptor Table";
const INDIRECT = "virtio 1.2 §2.7.5.3.1 Driver Requirements: Indirect Descriptors";
const v = (section: string, rule: string): ConformanceRule => ({ severity: "violation", section, rule });

/** For every diagnostic kind (device, chain walker, transport): its severity and the rule it reports. */
export const CONFORMANCE: Readonly<Record<DiagnosticKind, ConformanceRule>> = {
  // ---- descriptor chains (src/virtio/chain.ts) ----
  "head-out-of-range": v("virtio 1.2 §2.7.6 The Virtqueue Available Ring", "ring[] entries are heads of descriptor chains: indexes below Queue Size"),
  "next-out-of-range": v(DESC, "next is the index of a descriptor of the same table (below Queue Size)"),
  "loop": v("virtio 1.2 §2.7.5.2 Driver Requirements: The Virtqueue Descriptor Table", "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total, including any chaining (a loop never ends)"),
  "segment-out-of-ram": v(DESC, "addr is a guest-physical buffer address: the buffer must lie in guest RAM"),
  "zero-length": v("virtio 1.2 §2.7.5.2 Driver Requirements: The Virtqueue Descriptor Table", "a descriptor describes a buffer (a 0-length one carries nothing; refused)"),
  "readable-after-writable": v("virtio 1.2 §2.7.5.2 Driver Requirements: The Virtqueue Descriptor Table", "A driver MUST NOT add a device-readable descriptor after a device-writable one in a chain"),
  "too-many-segments": { severity: "warning", section: "device limit (QEMU: VIRTQUEUE_MAX_SIZE)", rule: "a chain of more descriptors than the queue has entries (this device walks at most 256 per chain); refused" },
  "bad-indirect-table": v(INDIRECT, "an indirect table is a whole number of 16-byte descriptors inside guest RAM, len > 0"),
  "nested-indirect": v(INDIRECT, "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor"),
  "indirect-with-next": v(INDIRECT, "A driver MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT in flags"),
  "indirect-not-negotiated": v(INDIRECT, "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the VIRTIO_F_INDIRECT_DESC feature was negotiated"),
  "desc-table-out-of-ram": v(DESC, "the descriptor table (16 x Queue Size bytes) lies in guest RAM"),
  "avail-idx-jump": v("virtio 1.2 §2.7.6 The Virtqueue Available Ring", "idx moves by the entries the driver added: at most Queue Size ahead of what the device consumed (the ring is broken: DEVICE_NEEDS_RESET)"),

  // ---- transport (src/virtio/pci-transport.ts) ----
  "features-not-offered": v("virtio 1.2 §2.2.1 Driver Requirements: Feature Bits", "The driver MUST NOT accept a feature which the device did not offer (FEATURES_OK stays clear)"),
  "features-refused": v("virtio 1.2 §2.2.1 / balloon §Feature bit requirements", "the accepted set breaks a feature dependency (see FEATURE_RULES in src/balloon/features.ts); FEATURES_OK stays clear"),
  "features-changed-after-features-ok": v(INIT_DRV, "The driver MUST NOT accept new feature bits after setting FEATURES_OK"),
  "feature-select-out-of-range": { severity: "warning", section: "virtio 1.2 §4.1.4.3 Common configuration structure layout", rule: "driver_feature_select picks a 32-bit word of the 64 feature bits; words past 1 hold nothing (write ignored)" },
  "status-bits-cleared": v(STATUS_DRV, "The driver MUST NOT clear a device status bit (the bits stay set)"),
  "status-reserved-bits": v(STATUS_DRV, "The driver MUST update device status, setting bits to indicate the completed steps of the driver initialization sequence (bits 4-5 name no step; ignored)"),
  "driver-set-needs-reset": v(STATUS_DRV, "The driver MUST update device status, setting bits to indicate the completed steps of the driver initialization sequence (DEVICE_NEEDS_RESET is set by the device, §2.1.2; ignored)"),
  "features-ok-without-driver": v(INIT_DRV, "The driver MUST follow this sequence to initialize a device: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, ... (FEATURES_OK came before ACKNOWLEDGE and DRIVER)"),
  "driver-ok-without-features-ok": v(INIT_DRV, "The driver MUST follow this sequence ... set FEATURES_OK ... set DRIVER_OK (DRIVER_OK without FEATURES_OK; the device goes live once both are set)"),
  "queue-select-out-of-range": v("virtio 1.2 §4.1.4.3 Common configuration structure layout", "queue_select names a virtqueue below num_queues (queue fields written otherwise are ignored)"),
  "queue-configured-while-enabled": v(COMMON_DRV, "The driver MUST configure the other virtqueue fields before enabling the virtqueue with queue_enable (changes after it are ignored)"),
  "queue-enable-refused": v("virtio 1.2 §2.7 Split Virtqueues", "Queue Size is a power of 2 no larger than the device's maximum; the three areas are aligned (16 / 2 / 4) and lie in guest RAM (DEVICE_NEEDS_RESET)"),
  "queue-disable-not-supported": v(COMMON_DRV, "The driver MUST NOT write a 0 to queue_enable (without VIRTIO_F_RING_RESET)"),
  "queue-enabled-past-features": v(INIT_DRV, "The driver MUST follow this sequence to initialize a device: ... set FEATURES_OK ... perform device-specific setup, including discovery of virtqueues (a queue enabled before FEATURES_OK that the accepted features do not have is disabled)"),
  "queue-enable-bad-value": v(COMMON_DRV, "queue_enable is enabled by writing 1 (other values ignored)"),
  "queue-address-too-large": v("virtio 1.2 §2.7 Split Virtqueues", "queue_desc / queue_driver / queue_device are guest-physical addresses; none reaches 2^53 on this machine (the queue cannot be enabled)"),
  "notify-before-driver-ok": {
    severity: "tolerated", section: INIT_DRV,
    rule: "The driver MUST NOT send any buffer available notifications to the device before setting DRIVER_OK. Linux's virtio_balloon kicks its first stats buffer in probe, before virtio_device_ready(); the notification is kept and delivered at DRIVER_OK (and survives a snapshot)",
  },
  "notify-while-needs-reset": { severity: "warning", section: STATUS_DRV, rule: "The driver SHOULD NOT rely on completion of operations of a device if DEVICE_NEEDS_RESET is set (the notification is dropped until a reset)" },
  "notify-value-mismatch": v("virtio 1.2 §4.1.5.2 Available Buffer Notifications", "the driver writes the virtqueue index to the queue's notification address (the address decides; diagnosed)"),
  "device-config-out-of-range": v("virtio 1.2 §4.1.4.6 Device-specific configuration", "the device-specific configuration is configSize bytes; writes past it are ignored"),
  "bar-write-unused": v("virtio 1.2 §4.1.4 Virtio Structure PCI Capabilities", "only the capability structures give BAR bytes a meaning; a write to a gap, past the last structure, or across a structure's end is ignored"),
  "field-access-not-natural": v(PCI_ACCESS, "The driver MUST access each field using the “natural” access method, i.e. 32-bit accesses for 32-bit fields, 16-bit accesses for 16-bit fields and 8-bit accesses for 8-bit fields (64-bit fields as two 32-bit halves; a write across fields is ignored)"),

  // ---- balloon device ----
  "pfn-buffer-misaligned": {
    severity: "violation", section: DEVOP,
    rule: "addresses are divided by 4096 and the descriptor describing the resulting 32-bit array is added to the inflateq (a PFN buffer is whole le32 entries; this device requires each readable descriptor to hold whole entries)",
  },
  "pfn-buffer-empty": {
    severity: "warning", section: DEVOP,
    rule: "the driver constructs an array of addresses of unused memory pages (a request without PFNs does nothing)",
  },
  "pfn-out-of-range": {
    severity: "violation", section: DEVOP,
    rule: "the driver constructs an array of addresses of unused memory pages (a PFN past the end of guest RAM is not a page of the guest)",
  },
  "too-many-pfns": {
    severity: "warning", section: "Linux drivers/virtio/virtio_balloon.c VIRTIO_BALLOON_ARRAY_PFNS_MAX",
    rule: "Linux never sends more than 256 PFNs per request; the request is still handled",
  },
  "bitmap-too-short": {
    severity: "violation", section: INIT_INFLATE,
    rule: "The driver MUST append a device-writable bitmap buffer to each inflate descriptor chain. The bitmap buffer MUST be at least ⌈N/8⌉ bytes, where N is the number of PFNs in the inflate request.",
  },
  "unexpected-writable": {
    severity: "violation", section: DEVOP,
    rule: "inflate/deflate requests, stats buffers and command IDs are driver-to-device (output) buffers; only with VIRTIO_BALLOON_F_DEVICE_INIT_ON_INFLATE does an inflate chain carry a device-writable bitmap",
  },
  "unexpected-readable": {
    severity: "warning", section: "virtio 1.2 §5.5.6.4/§5.5.6.6",
    rule: "free pages are supplied as device-writable (input) scatter-gather entries; readable descriptors here are ignored",
  },
  "inflate-already-inflated": {
    severity: "warning", section: DEVOP,
    rule: "the driver constructs an array of addresses of unused memory pages (a page already in the balloon is not unused)",
  },
  "deflate-not-inflated": {
    severity: "violation", section: DEVOP,
    rule: "To remove memory from the balloon: the driver constructs an array of addresses of memory pages it has previously given to the balloon",
  },
  "actual-above-target": {
    severity: "warning", section: "virtio 1.2 §5.5.6.1 Driver Requirements: Device Operation",
    rule: "The driver SHOULD supply pages to the balloon when num_pages is greater than the actual number of pages in the balloon (actual rose above num_pages)",
  },
  "actual-above-ram": {
    severity: "violation", section: "virtio 1.2 §5.5.6.1 Driver Requirements: Device Operation",
    rule: "The driver MUST update actual after changing the number of pages in the balloon (actual is a number of guest pages; it cannot exceed guest RAM)",
  },
  "actual-above-inflated": {
    severity: "warning", section: "virtio 1.2 §5.5.6.1 Driver Requirements: Device Operation",
    rule: "actual reflects the new number of pages in the balloon (it exceeds the pages this device has seen inflated; legal transiently)",
  },
  "write-to-read-only-field": {
    severity: "violation", section: "virtio 1.2 §4.1.4.3 / §5.5.4 Device configuration layout",
    rule: "read-only fields are not written by the driver: device_feature, num_queues, config_generation, queue_notify_off, ISR status; in the balloon config, num_pages and free_page_hint_cmd_id (ignored)",
  },

  "poison-val-changed-while-live": {
    severity: "violation", section: "virtio 1.2 §5.5.6.5.1 Driver Requirements: Page Poison",
    rule: "The driver MUST NOT modify poison_val while the DRIVER_OK bit is set.",
  },
  "poison-val-without-feature": {
    severity: "warning", section: "virtio 1.2 §5.5.4 Device configuration layout",
    rule: "poison_val is available if VIRTIO_BALLOON_F_PAGE_POISON has been negotiated (written without it; stored, unused)",
  },
  "poison-val-not-byte-pattern": {
    severity: "warning", section: "device limit (Linux writes a repeated byte)",
    rule: "this device fills with poison_val only when its four bytes are equal; otherwise pages are left unmodified (always allowed with PAGE_POISON) and never reported as initialised",
  },
  "notify-disabled-queue": {
    severity: "violation", section: "virtio 1.2 §4.1.4.4 Notification structure layout",
    rule: "a notification names a queue that does not exist or is not live; ignored",
  },
  "queue-too-small": {
    severity: "warning", section: "Linux mm/page_reporting.h PAGE_REPORTING_CAPACITY",
    rule: "the reporting queue needs at least 32 entries for Linux's batches",
  },
  "chain-error": {
    severity: "violation", section: "virtio 1.2 §2.7.5 The Virtqueue Descriptor Table",
    rule: "a malformed descriptor chain (the specific kind is passed through from the virtqueue)",
  },
  "device-internal-error": {
    severity: "host", section: "device bug",
    rule: "an unexpected exception inside the device was caught; the chain was returned with used length 0",
  },
  "stats-buffer-misaligned": {
    severity: "violation", section: "virtio 1.2 §5.5.6.3.1 Driver Requirements: Memory Statistics",
    rule: "Driver MUST use an output buffer size which is a multiple of 6 bytes for all buffers submitted to the statsq (sic: entries are 10 bytes, le16 tag + le64 val)",
  },
  "stats-extra-buffer": {
    severity: "violation", section: "virtio 1.2 §5.5.6.3.1 Driver Requirements: Memory Statistics",
    rule: "The driver MUST make at most one buffer available to the device in the statsq, at all times.",
  },
  "hint-cmd-id-bad-size": {
    severity: "violation", section: "virtio 1.2 §5.5.6.4.1 Driver Requirements: Free Page Hinting",
    rule: "The driver MUST use an output buffer size of 4 bytes for all output buffers submitted to the free_page_vq.",
  },
  "hint-cmd-id-repeated": {
    severity: "violation", section: "virtio 1.2 §5.5.6.4.1 Driver Requirements: Free Page Hinting",
    rule: "The driver MUST NOT provide more than one output buffer containing the current command ID.",
  },
  "hint-cmd-id-mismatch": {
    severity: "warning", section: "virtio 1.2 §5.5.6.4.2 Device Requirements: Free Page Hinting",
    rule: "The device MUST ignore pages that are provided with a command ID that does not match the current value in free_page_hint_cmd_id.",
  },
  "hint-pages-ignored": {
    severity: "warning", section: "virtio 1.2 §5.5.6.4.1 Driver Requirements: Free Page Hinting",
    rule: "The driver MUST start hinting by providing an output buffer containing the current command ID (pages outside a started cycle are ignored)",
  },
  "report-without-pages": {
    severity: "warning", section: "virtio 1.2 §5.5.6.6 Free Page Reporting",
    rule: "The driver gathers free pages into a scatter-gather list and adds them to the reporting_vq (the chain holds no device-writable range)",
  },
  "range-not-page-aligned": {
    severity: "warning", section: "virtio 1.2 §5.5.6.6.1 Driver Requirements: Free Page Reporting",
    rule: "The driver SHOULD attempt to report large pages rather than smaller ones (a range not made of whole 4 KiB pages; only its own bytes are touched)",
  },
  "target-above-ram": {
    severity: "host", section: "host API",
    rule: "the balloon target cannot exceed guest RAM; clamped",
  },
  "stats-interval-out-of-range": {
    severity: "host", section: "host API",
    rule: "the stats polling interval is 0 (off) or 1 ms .. 2^31-1 ms (what a timer can honour); clamped, or refused when not a positive number",
  },
  "offer-dependency": {
    severity: "host", section: "virtio 1.2 §2.2.2 Device Requirements: Feature Bits / balloon §Feature bit requirements",
    rule: "A device MUST NOT offer a feature which requires another feature which was not offered (DEVICE_INIT_REPORTED is not offered without PAGE_REPORTING)",
  },
  "pfn-list-too-long": {
    severity: "violation", section: DEVOP,
    rule: "a PFN array lists unused pages of one request; this device takes at most 1024 PFNs (one 4 KiB driver page of le32 entries; Linux sends 256) per request, so no notify does unbounded work; longer requests are refused whole (used 0)",
  },
  "request-inflates-own-buffer": {
    severity: "violation", section: DEVOP,
    rule: "the driver constructs an array of addresses of unused memory pages (the page holding the request's own PFN list or bitmap is in use); refused whole (used 0), so the device never rewrites a request it is reading",
  },
  "ranges-overlap": {
    severity: "violation", section: "virtio 1.2 §5.5.6.4 Free Page Hinting / §5.5.6.6 Free Page Reporting",
    rule: "each device-writable range is a distinct set of free pages: ranges of one chain never overlap (so they never sum past guest RAM); the chain is refused whole (nothing filled, used 0)",
  },
};

export interface Clock {
  /** Milliseconds (any epoch). */
  now(): number;
}

/** Collects and fans out diagnostics; counts them per kind. */
export class DiagnosticSink {
  readonly counts = new Map<string, number>();
  total = 0;
  private readonly listeners = new Set<(d: BalloonDiagnostic) => void>();

  constructor(private readonly clock: Clock) {}

  on(fn: (d: BalloonDiagnostic) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(kind: BalloonDiagnostic["kind"], message: string, detail: Record<string, unknown> = {}, queue?: number): BalloonDiagnostic {
    const d: BalloonDiagnostic = {
      kind,
      message,
      severity: CONFORMANCE[kind].severity,
      detail,
      time: this.clock.now(),
    };
    if (queue !== undefined) d.queue = queue;
    this.total++;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    for (const fn of this.listeners) {
      try {
        fn(d);
      } catch {
        // a listener's bug must not break the device
      }
    }
    return d;
  }

  countsObject(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  restoreCounts(total: number, counts: Record<string, number>): void {
    this.total = total;
    this.counts.clear();
    for (const [k, v] of Object.entries(counts)) this.counts.set(k, v);
  }
}

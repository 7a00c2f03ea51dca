/**
 * Named diagnostics: one kind per bad-input rule. The device never throws on guest input (seed 004:
 * never trust the guest — a clear diagnosis and a safe refusal, not a crash); it emits one of these and
 * carries on. `CONFORMANCE` says, for each kind, which rule the driver (or host) broke, quoting the spec.
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
  // host side
  | "target-above-ram"
  | "features-refused";

export type DiagnosticSeverity =
  /** the driver broke a MUST of the spec */
  | "violation"
  /** legal or tolerated, but suspicious or outside what Linux does */
  | "warning"
  /** the host (API user) asked for something impossible; clamped or refused */
  | "host";

export interface BalloonDiagnostic {
  /** A balloon kind, a chain error kind (from the virtqueue), or a transport kind (forwarded by src/host/attach.ts). */
  kind: BalloonDiagnosticKind | ChainDiagnosticKind | TransportDiagnosticKind;
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
const INIT_INFLATE = "balloon spec patch v3 (seed 000) §Device Initialized Pages on Inflate, driver requirements";

/** For every diagnostic kind: the rule it reports. */
export const CONFORMANCE: Readonly<Record<BalloonDiagnosticKind, ConformanceRule>> = {
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
    severity: "violation", section: "virtio 1.2 §5.5.4 Device configuration layout",
    rule: "free_page_hint_cmd_id is read-only by the driver; num_pages is written by the device only",
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
  "features-refused": {
    severity: "violation", section: "balloon §Feature bit requirements",
    rule: "see FEATURE_RULES in src/balloon/features.ts",
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
    const known = (CONFORMANCE as Record<string, ConformanceRule | undefined>)[kind];
    const d: BalloonDiagnostic = {
      kind,
      message,
      severity: known?.severity ?? "violation",
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

/**
 * The fault-injection options (all off by default) and their names: a leaf module, imported by the
 * device, the run-time injector (faults.ts), the events (a `fault` event names one) and the harness.
 */

/**
 * FAULT INJECTION — makes the device deliberately WRONG, to test a driver's defences (spec patch v3
 * §Security Considerations: an untrusted device can claim initialisation it did not do). All off by default.
 */
export interface BalloonFaults {
  /** Bit 7: set bitmap bits for every valid PFN but leave the pages untouched. Bit 6: report the whole
   *  chain as initialised (used length = all writable bytes) but leave the pages untouched. */
  lieAboutInit?: boolean;
  /** Bit 7: set the padding bits of the last bitmap byte (the spec says they MUST be 0). */
  setPaddingBits?: boolean;
  /** Bit 6: report a used length one page (4096 bytes) shorter than what was initialised (min 0). */
  shortReportUsedLength?: boolean;
  /** Neither bit 6 nor PAGE_POISON: fill reported pages with 0x5A (allowed: the device MAY modify them). */
  scribbleReported?: boolean;
  /** Hold every used buffer this many ms (host clock) before writing it and interrupting. */
  delayUsedMs?: number;
  /** Never return every Nth chain of the inflate and of the deflate queue (processed, no used element). */
  dropUsedEvery?: number;
  /** Never raise queue interrupts (the used ring is still written; only a polling driver sees it). */
  withholdInterrupts?: boolean;
  /** Show num_pages = 0xFFFFFFFF from the start, and host targets unclamped (the spec's denial of service). */
  hugeNumPages?: boolean;
  /** After DRIVER_OK and every host target change: `count` more config interrupts, one per `intervalMs`;
   *  with `toggle`, num_pages flips between the previous and the new target, ending on the new one. */
  configStorm?: ConfigStorm;
  /** The next inflate request is not completed: DEVICE_NEEDS_RESET is set instead (once per device). */
  resetMidInflate?: boolean;
  /** Offer the bits asked for even where one requires a bit that is off (bit 6 without bit 5), which
   *  virtio 1.2 §2.2.2 forbids the device: shows whether a driver drops such a bit itself. */
  offerUnchecked?: boolean;
}

export interface ConfigStorm { intervalMs: number; count: number; toggle?: boolean }

/** The faults the per-queue handlers act on themselves; the others act in faults.ts. */
export type InitFaults = Required<Pick<BalloonFaults, "lieAboutInit" | "setPaddingBits" | "shortReportUsedLength" | "scribbleReported">>;

export type FaultName = keyof BalloonFaults;

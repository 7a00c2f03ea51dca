/** Shared harness types (platform-neutral: used by the Node runner, the worker processes and the browser page). */
import type { FeatureOffer } from "../balloon/features.js";
import type { TestDescriptor } from "./descriptor.js";
import type { ReportCase } from "./tap.js";

/** How one guest is booted. Tests with equal `key(boot)` may share a guest. */
export interface BootConfig {
  memoryMiB: number;
  /** Appended to the image's cmdline. */
  cmdlineExtra?: string;
  /** Replaces the image's cmdline. */
  cmdline?: string;
  /** Custom images (Node: file paths; browser: URLs). */
  kernel?: string;
  initrd?: string;
  /** Directory / URL base of the guest images (default: the committed ones). */
  imageDir?: string;
  /** The `--modules` argument: `initrd` is then the image with the module cpio appended (modules.ts). */
  modules?: string;
  features: FeatureOffer;
  /** Faults switched on, as `faultByName` spells them: `BalloonFaults` keys, `key=value` for valued ones. */
  faults: string[];
  bootTimeoutMs: number;
}

/** A test ready to run: its source and its resolved settings. */
export interface PlannedTest {
  /** Stable id: the host path relative to cwd, or `guest:/tests/x.sh`. */
  id: string;
  name: string;
  /** Script text sent to the guest; absent for a script that lives in the guest image. */
  content?: string;
  /** Path inside the guest for an in-image script. */
  guestPath?: string;
  descriptor: TestDescriptor;
  timeoutMs: number;
}

export interface TestGroup {
  /** Key of the boot config, also the group's display name. */
  key: string;
  boot: BootConfig;
  tests: PlannedTest[];
  /** A test that asked for `boot: fresh` gets a group of its own. */
  fresh: boolean;
  /** Identifies the exact post-boot state (images, config, lib.sh, versions) in a snapshot cache. */
  cacheKey?: string;
}

/** One recorded balloon transaction or host step. */
export interface TraceEntry {
  /** ms since the test started. */
  t: number;
  /** ms since the previous entry of the same event type. */
  sincePrev: number | null;
  event: string;
  [field: string]: unknown;
}

export interface TestTrace {
  test: string;
  boot: BootConfig;
  entries: TraceEntry[];
}

export type HarnessEvent =
  | { type: "group-start"; group: string; tests: number }
  | { type: "boot-start"; group: string }
  | { type: "boot-end"; group: string; ms: number; ok: boolean }
  /** The group's post-boot snapshot was restored for the next test (`ms`: restore + shell answering). */
  | { type: "restore-end"; group: string; ms: number; bytes: number }
  | { type: "test-start"; group: string; test: string; name: string }
  | { type: "test-end"; group: string; result: CaseResult }
  | { type: "group-end"; group: string };

/** A finished test: what the reports need, plus its trace when it failed (or all traces were asked for). */
export interface CaseResult extends ReportCase {
  id: string;
  /** With `stopRun` (the guest could not run tests at all): the kernel was at fault rather than a test (exit 125 under --bisect). */
  untestable?: boolean;
  trace?: TestTrace;
  bootMs?: number;
  /** How the test's guest started: a boot, the group's snapshot, or the previous test's guest. */
  start?: "boot" | "restore" | "reuse";
}

/**
 * The slice of the host API (`src/host/balloon-host.ts`) the harness drives. Structural, so the harness
 * also runs against a guest without a balloon (host steps then answer @@ERR).
 */
export interface BalloonHostLike {
  setTarget(pages: number): void;
  readonly target: number;
  readonly actual: number;
  on(event: string, fn: (e: any) => void): unknown;
  off?(event: string, fn: (e: any) => void): void;
  stats?(): unknown;
  requestStats?(timeoutMs?: number): unknown;
  counters?(): unknown;
  startHinting?(): unknown;
  stopHinting?(): unknown;
  /** Offered and negotiated features, as `describeFeatures` names them (STATS_VQ, ...). */
  readonly features?: { offeredNames: string[]; negotiatedNames: string[] };
}

/** The slice of `VM` the harness needs (serial out comes through the launcher's `onSerial`). */
export interface VMLike {
  send(text: string): void;
  destroy(): Promise<void>;
  /** v86 snapshots: a group boots once and restores this state before each further test. */
  saveState?(): Promise<ArrayBuffer>;
  restoreState?(state: ArrayBuffer): Promise<void>;
}

export interface GuestHandle {
  vm: VMLike;
  balloon: BalloonHostLike | null;
}

/**
 * Starts a guest for a config and resolves once it runs (the session finds the shell itself);
 * `onSerial` receives every serial character/chunk, `onBalloon` the balloon as soon as it is plugged in.
 */
export type Launcher = (boot: BootConfig, onSerial: (text: string) => void, onBalloon: (b: BalloonHostLike) => void) => Promise<GuestHandle>;

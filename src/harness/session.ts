/**
 * Runs one group of tests (same boot config) on one guest: boot, prepare the shell, then per test upload
 * the script, run the `# host:` steps, run the script while answering its host steps, parse its TAP,
 * collect device diagnostics and the transaction trace, and put the balloon back to 0 for the next test.
 * Platform-neutral: the Node runner, the worker processes and the browser page all call `runGroup`.
 */
import { CONFORMANCE } from "../balloon/diagnostics.js";
import { BALLOON_EVENTS } from "../vocabulary.js";
import { describeOffer, shortName } from "./descriptor.js";
import { runHostStep, StepError, waitActual, type StepContext } from "./host-steps.js";
import { CrashWatch, findShell, GuestShell, KernelCrash, SerialLines, TimeoutError, uploadFile } from "./serial.js";
import { parseTap } from "./tap.js";
import type { BalloonHostLike, BootConfig, CaseResult, GuestHandle, HarnessEvent, Launcher, PlannedTest, TestGroup, TraceEntry } from "./types.js";

export interface GroupOptions {
  launcher: Launcher;
  /** Text of guest/initramfs/tests/lib.sh, uploaded to /tests/lib.sh after boot. */
  libScript: string;
  emit?: (e: HarnessEvent) => void;
  /** Keep traces of passing tests too (default: failing tests only). */
  traceAll?: boolean;
  /** Serial lines attached to a failure (default 80). */
  serialLines?: number;
  /** Console lines that fail a test at once (default DEFAULT_CRASH_PATTERNS; [] = off). */
  crashPatterns?: readonly string[];
  /** Stop with one diagnosis when no driver is bound to virtio device 5 after boot (default true). */
  driverCheck?: boolean;
  /** Fail on "tolerated" diagnostics (known driver quirks) at boot too (`--strict`). */
  strict?: boolean;
  /** Diagnostic kinds that fail no test in this run (`--allow-diagnostic`). */
  allowDiagnostics?: readonly string[];
  /** Restore a post-boot snapshot before each further test of a group instead of reusing the guest (default true). */
  snapshots?: boolean;
  /** Post-boot snapshots kept across runs (Node: on disk), looked up by `group.cacheKey`. */
  cache?: SnapshotCache;
  /** Polled between tests: true once another group stopped the run. */
  shouldStop?: () => boolean;
}

interface Diag {
  kind: string;
  severity: string;
  message: string;
  detail?: unknown;
  queue?: number;
}

function jsonSafe(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `0x${x.toString(16)}` : x)));
}

export function bootKey(b: BootConfig): string {
  const parts = [`${b.memoryMiB}M`, `features=${describeOffer(b.features)}`];
  if (b.faults.length) parts.push(`faults=${[...b.faults].sort().join(",")}`);
  if (b.cmdline) parts.push(`cmdline=${b.cmdline}`);
  if (b.cmdlineExtra) parts.push(`+${b.cmdlineExtra}`);
  if (b.kernel) parts.push(`kernel=${b.kernel}`);
  if (b.initrd) parts.push(`initrd=${b.initrd}`);
  if (b.modules) parts.push(`modules=${b.modules}`);
  return parts.join(" ");
}

export function conformanceFailure(d: Diag): string {
  const rule = (CONFORMANCE as Record<string, { section: string; rule: string } | undefined>)[d.kind];
  const where = d.queue !== undefined ? ` (queue ${d.queue})` : "";
  return rule
    ? `device conformance violation [${d.kind}]${where}: ${d.message} — rule: ${rule.section}: "${rule.rule}"`
    : `device conformance violation [${d.kind}]${where}: ${d.message}`;
}

class Guest {
  serial = new SerialLines();
  shell!: GuestShell;
  handle!: GuestHandle;
  crash!: CrashWatch;
  dead = false;
  bootMs = 0;
  /** State right after boot + prepare + driver check (groups of more than one test). */
  snapshot: ArrayBuffer | null = null;
  /** The guest has run a test since the snapshot (or boot). */
  used = false;
  /** Diagnostics and trace entries go to whoever is listening (the running test). */
  diagSink: ((d: Diag) => void) | null = null;
  traceSink: ((event: string, e: Record<string, unknown>) => void) | null = null;
  /** Diagnostics that came outside a test (negotiation at boot, cleanup): charged to the next test. */
  orphanDiags: Diag[] = [];

  /** Boots; with `from`, restores that post-boot state over the just-started machine instead of booting. */
  async boot(launcher: Launcher, boot: BootConfig, crashPatterns?: readonly string[], from?: ArrayBuffer): Promise<void> {
    const t0 = Date.now();
    this.crash = new CrashWatch(this.serial, crashPatterns);
    // Device events from the moment the balloon is plugged in: a driver that breaks a rule while it
    // negotiates fails the first test, not nobody.
    this.handle = await raceCrash(
      launcher(boot, (t) => this.serial.push(t), (b) => this.subscribe(b)),
      this.crash,
    );
    this.shell = new GuestShell(this.serial, (t) => this.handle.vm.send(t));
    if (from) await this.handle.vm.restoreState!(from);
    // A restored shell answers at once on a quiet host; a loaded one can eat the boot budget before that.
    const left = boot.bootTimeoutMs - (Date.now() - t0);
    await raceCrash(findShell(this.shell, from ? Math.max(60_000, left) : Math.max(1000, left)), this.crash);
    this.bootMs = Date.now() - t0;
  }

  private subscribe(b: BalloonHostLike): void {
    for (const name of BALLOON_EVENTS) {
      b.on(name, (e: Record<string, unknown>) => {
        if (name === "diagnostic") {
          const d = e as unknown as Diag;
          if (this.diagSink) this.diagSink(d);
          else this.orphanDiags.push(d);
        }
        this.traceSink?.(name, e);
      });
    }
  }

  async prepare(libScript: string): Promise<void> {
    // No echo: busybox's line editor then reads plain lines (no echo, no tab completion).
    await this.shell.check("stty -echo", 20000);
    await uploadFile(this.shell, "/tests/lib.sh", libScript, "0644");
    // Modules appended by --modules or `v86-balloon initramfs` (idempotent: /init may have loaded them).
    const r = await this.shell.exec(`[ ! -f ${MODULE_LOADER} ] || sh ${MODULE_LOADER}`, 60000);
    if (r.status !== 0) this.moduleErrors = r.lines.slice(-15).join("\n");
  }

  /** What `load.sh` printed when some module did not load (part of the driver diagnosis). */
  moduleErrors = "";

  /** Why the balloon cannot be tested in this guest, or null when a driver is bound to virtio device 5. */
  async driverProblem(): Promise<GuestUnusable | null> {
    const r = await this.shell.exec(DRIVER_PROBE, 20000);
    const out = r.lines.join("\n");
    if (/^bound /m.test(out)) return null;
    const loaded = (out.match(/^modules: (.*)$/m)?.[1] ?? "").trim() || "none";
    const tail = `\n(loaded modules: ${loaded})${this.moduleErrors ? `\n--modules did not all load:\n${this.moduleErrors}` : ""}`;
    if (/^novirtio$/m.test(out)) {
      return new GuestUnusable(`the guest kernel has no virtio bus: CONFIG_VIRTIO is neither built in nor loaded; build it in or pass --modules DIR with virtio.ko, virtio_ring.ko, virtio_pci.ko and virtio_balloon.ko${tail}`, true);
    }
    if (/^nodevice$/m.test(out)) {
      return new GuestUnusable(`no virtio device 5 (balloon) on the guest's virtio bus: virtio_pci is not built in or not loaded (CONFIG_VIRTIO_PCI=m needs --modules), or it did not bind PCI device 1af4:1045${tail}`, true);
    }
    if (/^nodriver$/m.test(out)) {
      return new GuestUnusable(`no driver bound to virtio device 5 (balloon): virtio_balloon is not built in or not loaded (CONFIG_VIRTIO_BALLOON=m needs --modules DIR)${tail}`, true);
    }
    return new GuestUnusable(`virtio_balloon is registered but not bound to virtio device 5: its probe failed (see the serial log)${tail}\n${this.serial.lastLines(25)}`, false);
  }

  async destroy(): Promise<void> {
    this.dead = true;
    this.crash?.stop();
    try {
      await this.handle?.vm.destroy();
    } catch {
      // already gone
    }
  }
}

/** Where `--modules` puts the loader in the guest (written by modules.ts). */
export const MODULE_LOADER = "/lib/modules/v86-balloon/load.sh";

/** One line per finding: "bound DRIVER", "nodriver" (device without driver, no virtio_balloon), "unbound", ... */
const DRIVER_PROBE =
  'if [ ! -d /sys/bus/virtio/devices ]; then echo novirtio; else s=nodevice; for d in /sys/bus/virtio/devices/*; do ' +
  '[ "$(cat $d/device 2>/dev/null)" = 0x0005 ] || continue; if [ -e $d/driver ]; then s="bound $(ls -l $d/driver | sed "s,.*/,,")"; ' +
  'elif [ -d /sys/bus/virtio/drivers/virtio_balloon ]; then s=unbound; else s=nodriver; fi; done; echo "$s"; fi; ' +
  'echo "modules: $(cut -d" " -f1 /proc/modules 2>/dev/null | tr "\\n" " ")"';

/** The guest cannot run balloon tests: the run stops once with this. `untestable`: the kernel, not a test, is at fault. */
/** A post-boot state and the device diagnostics its boot produced (replayed to the first test). */
export interface CachedBoot {
  state: ArrayBuffer;
  diagnostics: Diag[];
}

export interface SnapshotCache {
  get(key: string): Promise<CachedBoot | null>;
  put(key: string, boot: CachedBoot): Promise<void>;
}

export class GuestUnusable extends Error {
  constructor(
    message: string,
    readonly untestable: boolean,
  ) {
    super(message);
  }
}

/** Puts the guest back to its post-boot state and waits for its shell to answer. */
async function restoreSnapshot(g: Guest): Promise<void> {
  await g.handle.vm.restoreState!(g.snapshot!);
  // The restored shell sits at its prompt waiting for a line: one marker round trip proves it runs.
  await raceCrash(findShell(g.shell, 30_000), g.crash);
}

function raceCrash<T>(p: Promise<T>, crash: CrashWatch): Promise<T> {
  return Promise.race([p, crash.crashed]);
}

/** The harness's own command markers, left out of the serial log attached to failures. */
const MARKER = /^(~ # )?__H[BE]\w+__$/;

function lastLinesOf(lines: string[], n: number): string {
  return lines.slice(-n).join("\n");
}

export async function runGroup(group: TestGroup, opts: GroupOptions): Promise<CaseResult[]> {
  const emit = opts.emit ?? (() => {});
  const results: CaseResult[] = [];
  const serialN = opts.serialLines ?? 80;
  emit({ type: "group-start", group: group.key, tests: group.tests.length });
  let guest: Guest | null = null;
  /** How the guest ensureGuest last returned was started. */
  let started: "boot" | "restore" = "boot";
  /** Set when the guest cannot run tests at all: the group (and the run) stops with it. */
  let stop: { message: string; untestable: boolean } | null = null;

  const ensureGuest = async (): Promise<Guest | null> => {
    if (guest && !guest.dead) return guest;
    const g = new Guest();
    const t0 = Date.now();
    const key = opts.snapshots !== false && opts.cache && !group.fresh ? group.cacheKey : undefined;
    const cached = key ? await opts.cache!.get(key).catch(() => null) : null;
    if (cached) {
      try {
        // Same images, config and lib.sh as a run that booted, checked the driver and saved this state.
        await g.boot(opts.launcher, group.boot, opts.crashPatterns, cached.state);
        g.orphanDiags = [...cached.diagnostics];
        g.snapshot = cached.state;
        emit({ type: "restore-end", group: group.key, ms: Date.now() - t0, bytes: cached.state.byteLength });
        started = "restore";
        guest = g;
        return g;
      } catch {
        await g.destroy(); // a state that does not come back: boot as if there were none
        return ensureFresh();
      }
    }
    return ensureFresh();
  };

  const ensureFresh = async (): Promise<Guest | null> => {
    emit({ type: "boot-start", group: group.key });
    const g = new Guest();
    const t0 = Date.now();
    try {
      await g.boot(opts.launcher, group.boot, opts.crashPatterns);
      await g.prepare(opts.libScript);
      if (opts.driverCheck !== false) {
        const problem = await g.driverProblem();
        if (problem) throw problem;
      }
      emit({ type: "boot-end", group: group.key, ms: Date.now() - t0, ok: true });
      const key = opts.cache && !group.fresh ? group.cacheKey : undefined;
      if (opts.snapshots !== false && !group.fresh && (group.tests.length > 1 || key) && g.handle.vm.saveState && g.handle.vm.restoreState) {
        g.snapshot = await g.handle.vm.saveState();
        if (key) await opts.cache!.put(key, { state: g.snapshot, diagnostics: [...g.orphanDiags] }).catch(() => {});
      }
      started = "boot";
      guest = g;
      return g;
    } catch (e) {
      emit({ type: "boot-end", group: group.key, ms: Date.now() - t0, ok: false });
      const msg = (e as Error).message;
      if (e instanceof GuestUnusable) stop = { message: msg, untestable: e.untestable };
      else if (e instanceof KernelCrash) stop = { message: `kernel crashed before the shell answered (${bootKey(group.boot)}): ${msg}`, untestable: true };
      else stop = { message: `boot failed (${bootKey(group.boot)}): ${msg.includes("last serial lines") ? msg : `${msg}\nlast serial lines:\n${g.serial.lastLines(40)}`}`, untestable: true };
      await g.destroy();
      return null;
    }
  };

  let uploadSeq = 0;
  for (const test of group.tests) {
    if (opts.shouldStop?.()) break;
    emit({ type: "test-start", group: group.key, test: test.id, name: test.name });
    const t0 = Date.now();
    const base: CaseResult = { id: test.id, name: test.name, file: test.id, ok: false, durationMs: 0, failures: [], group: group.key };
    if (test.descriptor.skip) {
      const r = { ...base, ok: true, skipped: test.descriptor.skip };
      results.push(r);
      emit({ type: "test-end", group: group.key, result: r });
      continue;
    }
    const reused = !!guest && !(guest as Guest).dead;
    let g = await ensureGuest();
    let start: CaseResult["start"] = reused ? "reuse" : started;
    if (g && reused && g.snapshot && g.used) {
      try {
        const r0 = Date.now();
        await restoreSnapshot(g);
        emit({ type: "restore-end", group: group.key, ms: Date.now() - r0, bytes: g.snapshot.byteLength });
        start = "restore";
        g.used = false;
      } catch {
        // A snapshot that does not come back is the harness's problem, not the test's: boot again.
        await g.destroy();
        g = await ensureGuest();
        start = "boot";
      }
    }
    if (!g) {
      const s = stop!;
      const r: CaseResult = { ...base, failures: [s.message], durationMs: Date.now() - t0, stopRun: s.message, untestable: s.untestable };
      results.push(r);
      emit({ type: "test-end", group: group.key, result: r });
      break;
    }
    const r = await runOne(g, test, ++uploadSeq, opts, group);
    r.bootMs = g.bootMs;
    r.start = start;
    r.durationMs = Date.now() - t0;
    if (!r.ok) r.serial = r.serial ?? g.serial.lastLines(serialN);
    results.push(r);
    emit({ type: "test-end", group: group.key, result: r });
  }
  if (guest) await (guest as Guest).destroy();
  emit({ type: "group-end", group: group.key });
  return results;
}

/** Short names of the features a test needs that this guest did not negotiate, with the reason. */
function missingFeatures(test: PlannedTest, b: BalloonHostLike | null): string | null {
  const need = test.descriptor.requires;
  if (!need.length) return null;
  const view = b?.features;
  const negotiated = new Set(view?.negotiatedNames ?? []);
  const offered = new Set(view?.offeredNames ?? []);
  const missing = need.filter((f) => !negotiated.has(f));
  if (!missing.length) return null;
  const why = missing.map((f) => `${shortName(f)} (${offered.has(f) ? "offered, the driver did not accept it" : "not offered"})`);
  return `needs ${why.join(", ")}`;
}

async function runOne(g: Guest, test: PlannedTest, seq: number, opts: GroupOptions, group: TestGroup): Promise<CaseResult> {
  const unmet = missingFeatures(test, g.handle.balloon);
  if (unmet) {
    return { id: test.id, name: test.name, file: test.id, ok: true, skipped: unmet, durationMs: 0, failures: [], group: group.key };
  }
  g.used = true;
  const failures: string[] = [];
  const diags: Diag[] = [...g.orphanDiags];
  const fromBoot = new Set(g.orphanDiags);
  g.orphanDiags = [];
  const entries: TraceEntry[] = [];
  const tStart = Date.now();
  const lastByEvent = new Map<string, number>();
  const trace = (event: string, e: Record<string, unknown>) => {
    const now = Date.now();
    const prev = lastByEvent.get(event);
    lastByEvent.set(event, now);
    if (entries.length < 200000) entries.push({ t: now - tStart, sincePrev: prev === undefined ? null : now - prev, event, ...(jsonSafe(e) as object) });
  };
  g.diagSink = (d) => diags.push(d);
  g.traceSink = trace;
  let hinting = false;
  const ctx: StepContext = {
    balloon: g.handle.balloon,
    trace: (event, e) => {
      if (event === "host-hint") hinting = e.action === "start";
      trace(event, e);
    },
    diagnostics: () => diags.map((d) => ({ kind: d.kind, severity: d.severity })),
  };
  let output: string[] = [];
  /** When each output line arrived: every assertion gets its own time in the reports. */
  const lineTimes: number[] = [];
  let scriptStart = tStart;
  let status: number | null = null;
  try {
    let path = test.guestPath;
    if (test.content !== undefined) {
      path = `/tmp/harness/${seq}.sh`;
      await raceCrash(uploadFile(g.shell, path, test.content), g.crash);
    }
    for (const step of test.descriptor.hostSteps) {
      try {
        await runHostStep(step, ctx);
      } catch (e) {
        failures.push(`# host: ${step} failed: ${(e as Error).message}`);
      }
    }
    if (!failures.length) {
      // Host steps asked for by the script, answered one at a time in order.
      let queue = Promise.resolve();
      const onLine = (line: string) => {
        lineTimes.push(Date.now());
        const m = /@@HOST (.*)$/.exec(line);
        if (!m) return;
        const step = m[1];
        queue = queue.then(async () => {
          let reply: string;
          try {
            reply = `@@OK ${await runHostStep(step, ctx)}`;
          } catch (e) {
            reply = `@@ERR ${(e as Error).message}`;
          }
          g.handle.vm.send(reply.replace(/[\r\n]+/g, " ") + "\n");
        });
      };
      g.serial.startCapture();
      scriptStart = Date.now();
      const env = `HARNESS=1 TEST_FEATURES='${describeOffer(group.boot.features)}' TEST_FAULTS='${group.boot.faults.join(",")}'`;
      const res = await raceCrash(g.shell.exec(`cd /root && ${env} sh ${path}`, test.timeoutMs, onLine), g.crash);
      await queue;
      output = res.lines;
      status = res.status;
    }
  } catch (e) {
    if (e instanceof KernelCrash) {
      // The report is the verdict; the guest is not reused (the next test boots a fresh one).
      failures.push(e.message);
      await g.destroy();
    } else if (e instanceof TimeoutError) {
      failures.push(`test timed out after ${test.timeoutMs} ms; last serial lines:\n${e.lastLines}`);
      // Try to get the shell back (Ctrl-C); otherwise the next test boots a fresh guest.
      g.handle.vm.send("\x03");
      try {
        await g.shell.exec("true", 5000);
      } catch {
        await g.destroy();
      }
    } else if (e instanceof StepError) {
      failures.push(`host step failed: ${e.message}`);
    } else {
      failures.push(`harness error: ${(e as Error).message}`);
      await g.destroy();
    }
  }
  const captured = g.serial.stopCapture();

  const tap = status === null && !output.length ? undefined : parseTap(output.join("\n"), lineTimes.length === output.length ? lineTimes : undefined, scriptStart);
  if (tap) {
    for (const a of tap.assertions) if (!a.ok && !a.directive) failures.push(`not ok ${a.n} - ${a.description}`);
    if (tap.bailOut) failures.push(`Bail out! ${tap.bailOut}`);
    for (const p of tap.problems) failures.push(`TAP: ${p}`);
    if (status !== null && status !== 0 && tap.failed === 0 && !tap.bailOut) failures.push(`script exited with status ${status}`);
  }

  // Put the balloon back for the next test sharing this guest (a `boot: fresh` test shares with nobody,
  // and its driver may be stuck on purpose, e.g. under drop-used).
  const b = g.handle.balloon;
  if (!g.dead && b && !group.fresh) {
    try {
      if (hinting && b.stopHinting) b.stopHinting();
    } catch {
      // not hinting
    }
    if (b.target !== 0 || b.actual !== 0) {
      b.setTarget(0);
      try {
        await waitActual(b, 0, 30000);
      } catch (e) {
        failures.push(`cleanup: balloon did not deflate to 0 after the test: ${(e as Error).message}`);
        await g.destroy();
      }
    }
  }
  g.diagSink = null;
  g.traceSink = null;

  // Conformance: every violation fails the test unless the descriptor allows that kind.
  const allowed = new Set([...test.descriptor.allowDiagnostics, ...test.descriptor.expectDiagnostics, ...(opts.allowDiagnostics ?? [])]);
  const notes: string[] = [];
  for (const d of diags) {
    if (allowed.has(d.kind) || (d.severity !== "violation" && d.severity !== "tolerated")) continue;
    // "tolerated" (CONFORMANCE): a rule the stock driver's probe breaks, e.g. its stats kick before
    // DRIVER_OK. Seen at boot it is a note unless --strict; during a test it fails like any violation.
    if (d.severity === "tolerated" && fromBoot.has(d) && !opts.strict) notes.push(`at boot (known driver quirk, --strict fails it): ${conformanceFailure(d)}`);
    else failures.push(conformanceFailure(d));
  }
  for (const k of test.descriptor.expectDiagnostics) {
    if (!diags.some((d) => d.kind === k)) failures.push(`expected device diagnostic [${k}] was not emitted`);
  }

  const ok = failures.length === 0;
  const result: CaseResult = {
    id: test.id,
    name: test.name,
    file: test.id,
    ok,
    skipped: tap?.skipAll ?? null,
    durationMs: Date.now() - tStart,
    tap,
    failures,
    group: group.key,
    ...(notes.length ? { notes } : {}),
  };
  if (!ok) {
    const lines = (captured.length ? captured : g.serial.lastLines(opts.serialLines ?? 80).split("\n")).filter((l) => !MARKER.test(l));
    result.serial = lastLinesOf(lines, opts.serialLines ?? 80);
  }
  if (!ok || opts.traceAll) {
    result.trace = {
      test: test.id,
      boot: group.boot,
      entries,
    };
  }
  return result;
}

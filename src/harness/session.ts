/**
 * Runs one group of tests (same boot config) on one guest: boot, prepare the shell, then per test upload
 * the script, run the `# host:` steps, run the script while answering its host steps, parse its TAP,
 * collect device diagnostics and the transaction trace, and put the balloon back to 0 for the next test.
 * Platform-neutral: the Node runner, the worker processes and the browser page all call `runGroup`.
 */
import { CONFORMANCE } from "../balloon/diagnostics.js";
import { BALLOON_EVENTS } from "../vocabulary.js";
import { describeOffer } from "./descriptor.js";
import { runHostStep, StepError, waitActual, type StepContext } from "./host-steps.js";
import { GuestShell, SerialLines, TimeoutError, uploadFile } from "./serial.js";
import { parseTap } from "./tap.js";
import type { BootConfig, CaseResult, GuestHandle, HarnessEvent, Launcher, PlannedTest, TestGroup, TraceEntry } from "./types.js";

export interface GroupOptions {
  launcher: Launcher;
  /** Text of guest/initramfs/tests/lib.sh, uploaded to /tests/lib.sh after boot. */
  libScript: string;
  emit?: (e: HarnessEvent) => void;
  /** Keep traces of passing tests too (default: failing tests only). */
  traceAll?: boolean;
  /** Serial lines attached to a failure (default 80). */
  serialLines?: number;
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
  dead = false;
  bootMs = 0;
  /** Diagnostics and trace entries go to whoever is listening (the running test). */
  diagSink: ((d: Diag) => void) | null = null;
  traceSink: ((event: string, e: Record<string, unknown>) => void) | null = null;
  /** Diagnostics that came outside a test (boot, cleanup): charged to the next test. */
  orphanDiags: Diag[] = [];

  async boot(launcher: Launcher, boot: BootConfig): Promise<void> {
    const t0 = Date.now();
    this.handle = await launcher(boot, (t) => this.serial.push(t));
    this.bootMs = Date.now() - t0;
    this.shell = new GuestShell(this.serial, (t) => this.handle.vm.send(t));
    const b = this.handle.balloon;
    if (b) {
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
  }

  async prepare(libScript: string): Promise<void> {
    // No echo: busybox's line editor then reads plain lines (no echo, no tab completion).
    await this.shell.check("stty -echo", 20000);
    await uploadFile(this.shell, "/tests/lib.sh", libScript, "0644");
  }

  async destroy(): Promise<void> {
    this.dead = true;
    try {
      await this.handle?.vm.destroy();
    } catch {
      // already gone
    }
  }
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
  let bootError: string | null = null;

  const ensureGuest = async (): Promise<Guest | null> => {
    if (guest && !guest.dead) return guest;
    if (bootError) return null;
    emit({ type: "boot-start", group: group.key });
    const g = new Guest();
    const t0 = Date.now();
    try {
      await g.boot(opts.launcher, group.boot);
      await g.prepare(opts.libScript);
      emit({ type: "boot-end", group: group.key, ms: Date.now() - t0, ok: true });
      guest = g;
      return g;
    } catch (e) {
      emit({ type: "boot-end", group: group.key, ms: Date.now() - t0, ok: false });
      const msg = (e as Error).message;
      bootError = `boot failed (${bootKey(group.boot)}): ${msg.includes("last serial lines") ? msg : `${msg}\nlast serial lines:\n${g.serial.lastLines(40)}`}`;
      await g.destroy();
      return null;
    }
  };

  let uploadSeq = 0;
  for (const test of group.tests) {
    emit({ type: "test-start", group: group.key, test: test.id, name: test.name });
    const t0 = Date.now();
    const base: CaseResult = { id: test.id, name: test.name, file: test.id, ok: false, durationMs: 0, failures: [], group: group.key };
    if (test.descriptor.skip) {
      const r = { ...base, ok: true, skipped: test.descriptor.skip };
      results.push(r);
      emit({ type: "test-end", group: group.key, result: r });
      continue;
    }
    const g = await ensureGuest();
    if (!g) {
      const r = { ...base, failures: [bootError ?? "boot failed"], durationMs: Date.now() - t0 };
      results.push(r);
      emit({ type: "test-end", group: group.key, result: r });
      continue;
    }
    const r = await runOne(g, test, ++uploadSeq, opts, group);
    r.bootMs = g.bootMs;
    r.durationMs = Date.now() - t0;
    if (!r.ok) r.serial = r.serial ?? g.serial.lastLines(serialN);
    results.push(r);
    emit({ type: "test-end", group: group.key, result: r });
  }
  if (guest) await (guest as Guest).destroy();
  emit({ type: "group-end", group: group.key });
  return results;
}

async function runOne(g: Guest, test: PlannedTest, seq: number, opts: GroupOptions, group: TestGroup): Promise<CaseResult> {
  const failures: string[] = [];
  const diags: Diag[] = [...g.orphanDiags];
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
  let status: number | null = null;
  try {
    let path = test.guestPath;
    if (test.content !== undefined) {
      path = `/tmp/harness/${seq}.sh`;
      await uploadFile(g.shell, path, test.content);
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
      const env = `HARNESS=1 TEST_FEATURES='${describeOffer(group.boot.features)}' TEST_FAULTS='${group.boot.faults.join(",")}'`;
      const res = await g.shell.exec(`cd /root && ${env} sh ${path}`, test.timeoutMs, onLine);
      await queue;
      output = res.lines;
      status = res.status;
    }
  } catch (e) {
    if (e instanceof TimeoutError) {
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

  const tap = status === null && !output.length ? undefined : parseTap(output.join("\n"));
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
  const allowed = new Set([...test.descriptor.allowDiagnostics, ...test.descriptor.expectDiagnostics]);
  for (const d of diags) {
    if (d.severity === "violation" && !allowed.has(d.kind)) failures.push(conformanceFailure(d));
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

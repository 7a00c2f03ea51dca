/**
 * TAP (Test Anything Protocol, version 12/13 subset) as the guest speaks it, parsed on the host, and
 * written back out as one TAP stream for the whole run.
 *
 * Understood: `1..N` plans (before or after the tests, `1..0 # SKIP why`, also right after a `1..N`), `ok N - desc`, `not ok N - desc`
 * (number and dash optional), `# SKIP` / `# TODO` directives, `# diagnostic` lines (attached to the test
 * above them, or to the script when no test came yet), `Bail out! reason`. Everything else (kernel printk,
 * program chatter) is kept as "other" output but does not affect the verdict.
 */

export type Directive = "skip" | "todo" | null;

export interface TapAssertion {
  /** The number the script printed, or the implied next number. */
  n: number;
  ok: boolean;
  description: string;
  directive: Directive;
  /** Reason after SKIP/TODO. */
  reason: string;
  /** `# ...` lines that followed it. */
  diag: string[];
  /** Wall time from the previous assertion (or the script's start) to this one, when line times were given. */
  ms?: number;
}

export interface TapResult {
  /** The plan's count, or null when no plan came. */
  plan: number | null;
  /** `1..0 # SKIP why`: the whole script was skipped. */
  skipAll: string | null;
  assertions: TapAssertion[];
  bailOut: string | null;
  /** Diagnostics printed before any assertion. */
  leadingDiag: string[];
  /** Protocol problems: duplicate/out-of-order numbers, plan mismatch, missing plan. */
  problems: string[];
  /** The verdict: no failing non-TODO assertion, no bail-out, no problems. */
  ok: boolean;
  passed: number;
  failed: number;
  skipped: number;
  todo: number;
}

const PLAN = /^1\.\.(\d+)\s*(?:#\s*(.*))?$/;
const ASSERT = /^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$/;
const DIRECTIVE = /^(skip|todo)\S*\s*(.*)$/i;

/**
 * Parses a script's output. `times[i]` (optional) is when line i arrived, `start` when the script started:
 * each assertion then gets its own duration (`ms`).
 */
export function parseTap(text: string, times?: number[], start?: number): TapResult {
  const lines = text.replace(/\r/g, "").split("\n");
  let prevAt = start ?? times?.[0] ?? 0;
  const r: TapResult = {
    plan: null, skipAll: null, assertions: [], bailOut: null, leadingDiag: [], problems: [],
    ok: true, passed: 0, failed: 0, skipped: 0, todo: 0,
  };
  for (const [idx, raw] of lines.entries()) {
    const line = raw.replace(/\s+$/, "");
    const trimmed = line.trimStart();
    if (!trimmed) continue;
    let m: RegExpExecArray | null;
    if ((m = PLAN.exec(trimmed))) {
      if (r.plan !== null && Number(m[1]) === 0 && !r.assertions.length) {
        // `plan N` then `skip_all`: the script decided to skip before its first assertion.
        r.plan = 0;
        r.skipAll = (m[2] ?? "").replace(/^skip\S*\s*/i, "") || "skipped";
        continue;
      }
      if (r.plan !== null) {
        r.problems.push(`more than one plan (1..${r.plan} and 1..${m[1]})`);
        continue;
      }
      r.plan = Number(m[1]);
      if (r.plan === 0) r.skipAll = (m[2] ?? "").replace(/^skip\S*\s*/i, "") || "skipped";
      continue;
    }
    if (trimmed.startsWith("Bail out!")) {
      r.bailOut = trimmed.slice("Bail out!".length).trim() || "(no reason)";
      break;
    }
    if ((m = ASSERT.exec(trimmed)) && /^(not )?ok(\s|$)/.test(trimmed)) {
      const n = m[2] !== undefined ? Number(m[2]) : r.assertions.length + 1;
      let directive: Directive = null;
      let reason = "";
      let description = m[3] ?? "";
      if (m[4] !== undefined) {
        const d = DIRECTIVE.exec(m[4].trim());
        if (d) {
          directive = d[1].toLowerCase() as Directive;
          reason = d[2];
        } else {
          // a '#' that is not a directive belongs to the description
          description = `${description} # ${m[4]}`.trim();
        }
      }
      if (n !== r.assertions.length + 1) r.problems.push(`test number ${n} out of sequence (expected ${r.assertions.length + 1})`);
      const a: TapAssertion = { n, ok: !m[1], description, directive, reason, diag: [] };
      if (times?.[idx] !== undefined) {
        a.ms = Math.max(0, times[idx] - prevAt);
        prevAt = times[idx];
      }
      r.assertions.push(a);
      continue;
    }
    if (trimmed.startsWith("#")) {
      const d = trimmed.replace(/^#\s?/, "");
      const last = r.assertions[r.assertions.length - 1];
      (last ? last.diag : r.leadingDiag).push(d);
    }
  }
  for (const a of r.assertions) {
    if (a.directive === "skip") r.skipped++;
    else if (a.directive === "todo") r.todo++;
    else if (a.ok) r.passed++;
    else r.failed++;
  }
  if (r.plan === null) {
    if (!r.bailOut) r.problems.push(r.assertions.length ? "no plan (1..N) printed" : "no TAP output (no plan, no ok/not ok lines)");
  } else if (r.plan !== r.assertions.length && !r.bailOut) {
    r.problems.push(`planned ${r.plan} test(s) but ran ${r.assertions.length}`);
  }
  r.ok = r.failed === 0 && !r.bailOut && r.problems.length === 0;
  return r;
}

// ---------------------------------------------------------------------------------------- writer

/** One host-side test result, as written to TAP/JUnit. */
export interface ReportCase {
  name: string;
  /** Source file (host path or `guest:/path`). */
  file: string;
  ok: boolean;
  skipped?: string | null;
  durationMs: number;
  /** The guest's TAP (parsed). Absent when the test never ran (boot failure). */
  tap?: TapResult;
  /** Why it failed, one line each (assertions, timeouts, exit status, conformance rules). */
  failures: string[];
  /** Serial log around the failure (attached to failing cases only). */
  serial?: string;
  /** Where its transaction trace was written. */
  traceFile?: string;
  /** Boot group (worker/config) it ran in. */
  group?: string;
  /** The run stopped at this case (no driver, boot failure): the report ends with `Bail out!`. */
  stopRun?: string;
  /** Findings that did not fail it (e.g. a known driver quirk at boot): `#` lines in TAP/KTAP. */
  notes?: string[];
}

/**
 * A case name that does not change between runs: the host's replies and measured values that tests put in
 * `[...]` (and `(x=...)`) are left out. The full text stays in the TAP output.
 */
export function stableName(description: string): string {
  return description.replace(/\s*\[[^\]]*\]/g, "").replace(/\s*\([^()]*=[^()]*\)/g, "").trim();
}

function tapEscape(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/#/g, "\\#").replace(/\n/g, " ");
}

/** YAML-ish block scalar lines for a TAP13 diagnostic. */
function yamlBlock(key: string, text: string, indent = "  "): string[] {
  const lines = text.replace(/\r/g, "").split("\n");
  return [`${indent}${key}: |-`, ...lines.map((l) => `${indent}  ${l}`)];
}

/**
 * The whole run as TAP 13: one top-level test point per script, its guest assertions as an indented
 * subtest, failures and serial log as a YAML block.
 */
export function writeTap(cases: ReportCase[]): string {
  const out = ["TAP version 13", `1..${cases.length}`];
  cases.forEach((c, i) => {
    if (c.tap && c.tap.assertions.length) {
      out.push(`    # Subtest: ${tapEscape(c.name)}`);
      for (const d of c.tap.leadingDiag) out.push(`    # ${d}`);
      for (const a of c.tap.assertions) {
        const dir = a.directive ? ` # ${a.directive.toUpperCase()} ${tapEscape(a.reason)}`.trimEnd() : "";
        out.push(`    ${a.ok ? "ok" : "not ok"} ${a.n} - ${tapEscape(a.description)}${dir}`);
        for (const d of a.diag) out.push(`    # ${d}`);
      }
      out.push(`    1..${c.tap.plan ?? c.tap.assertions.length}`);
    }
    const dir = c.skipped ? ` # SKIP ${tapEscape(c.skipped)}` : "";
    for (const n of c.notes ?? []) out.push(`# ${n}`);
    out.push(`${c.ok ? "ok" : "not ok"} ${i + 1} - ${tapEscape(c.name)}${dir}`);
    if (!c.ok) {
      out.push("  ---");
      out.push(`  file: ${JSON.stringify(c.file)}`);
      out.push(`  duration_ms: ${Math.round(c.durationMs)}`);
      if (c.group) out.push(`  group: ${JSON.stringify(c.group)}`);
      out.push("  failures:");
      for (const f of c.failures) out.push(`    - ${JSON.stringify(f)}`);
      if (c.traceFile) out.push(`  trace: ${JSON.stringify(c.traceFile)}`);
      if (c.serial) out.push(...yamlBlock("serial", c.serial));
      out.push("  ...");
    }
  });
  const stop = cases.find((c) => c.stopRun);
  if (stop) out.push(`Bail out! ${stop.stopRun!.split("\n")[0]}`);
  return out.join("\n") + "\n";
}

/**
 * The run as KTAP version 1 (what kselftest and KUnit print): one top-level test per script, its guest
 * assertions as a nested KTAP document, failures and the serial log as `#` diagnostic lines before the result.
 */
export function writeKtap(cases: ReportCase[]): string {
  const out = ["KTAP version 1", `1..${cases.length}`];
  const dirOf = (d: string | null, reason: string) => (d ? ` # ${d.toUpperCase()}${reason ? ` ${tapEscape(reason)}` : ""}` : "");
  cases.forEach((c, i) => {
    if (c.tap && (c.tap.assertions.length || c.tap.plan !== null)) {
      out.push("    KTAP version 1", `    # Subtest: ${tapEscape(c.name)}`, `    1..${c.tap.plan ?? c.tap.assertions.length}`);
      for (const d of c.tap.leadingDiag) out.push(`    # ${d}`);
      for (const a of c.tap.assertions) {
        for (const d of a.diag) out.push(`    # ${d}`);
        out.push(`    ${a.ok ? "ok" : "not ok"} ${a.n} ${tapEscape(a.description)}${dirOf(a.directive, a.reason)}`);
      }
    }
    if (!c.ok) {
      out.push(`# ${c.name}: ${c.file}, ${Math.round(c.durationMs)} ms${c.group ? `, boot ${c.group}` : ""}`);
      for (const f of c.failures) for (const l of f.split("\n")) out.push(`# ${l}`);
      if (c.traceFile) out.push(`# trace: ${c.traceFile}`);
      if (c.serial) for (const l of c.serial.split("\n")) out.push(`# serial: ${l}`);
    }
    for (const n of c.notes ?? []) out.push(`# ${n}`);
    out.push(`${c.ok ? "ok" : "not ok"} ${i + 1} ${tapEscape(c.name)}${c.skipped ? dirOf("skip", c.skipped) : ""}`);
  });
  const stop = cases.find((c) => c.stopRun);
  if (stop) out.push(`Bail out! ${stop.stopRun!.split("\n")[0]}`);
  return out.join("\n") + "\n";
}

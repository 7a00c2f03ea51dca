/**
 * JUnit XML (the Jenkins/GitLab/GitHub flavour): one <testsuite> per script file, one <testcase> per guest
 * assertion (or one for the script when it printed none) with its own time and a name that is the same in
 * every run (`stableName`: no host replies), host-side failures (timeouts, exit status,
 * conformance rules) as an extra "<script> (harness)" case; the serial log goes to <system-out> of failures.
 */
import { stableName, type ReportCase } from "./tap.js";

export function xmlEscape(s: string): string {
  return (
    s
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&apos;")
      // characters XML 1.0 forbids (serial logs carry escape codes)
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
  );
}

function cdata(s: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return `<![CDATA[${clean.replace(/]]>/g, "]]]]><![CDATA[>")}]]>`;
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

export function writeJUnit(cases: ReportCase[], suiteName = "v86-balloon guest tests"): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  const suites: string[] = [];
  for (const c of cases) {
    const body: string[] = [];
    let sTests = 0;
    let sFail = 0;
    let sSkip = 0;
    const classname = xmlEscape(c.file);
    let attach = c.serial ? `      <system-out>${cdata(c.serial)}</system-out>\n` : "";
    const assertions = c.tap?.assertions ?? [];
    // Without per-line arrival times (an old report), the script's time is spread over its assertions.
    const perAssertion = assertions.length > 0 ? c.durationMs / assertions.length : c.durationMs;
    for (const a of assertions) {
      sTests++;
      const name = xmlEscape(`${a.n} - ${stableName(a.description)}`);
      let inner = "";
      if (a.directive === "skip") {
        sSkip++;
        inner = `      <skipped message="${xmlEscape(a.reason)}"/>\n`;
      } else if (a.directive === "todo") {
        sSkip++;
        inner = `      <skipped message="${xmlEscape(`TODO ${a.reason}`)}"/>\n`;
      } else if (!a.ok) {
        sFail++;
        const msg = a.diag.join("\n");
        inner = `      <failure message="${xmlEscape(`not ok ${a.n} - ${a.description}`)}" type="assertion">${cdata(msg)}</failure>\n${attach}`;
        attach = ""; // the serial log goes with the first failure only
      }
      body.push(`    <testcase classname="${classname}" name="${name}" time="${secs(a.ms ?? perAssertion)}"${inner ? `>\n${inner}    </testcase>` : "/>"}`);
    }
    // Host-side verdicts that no guest assertion carries: one "(harness)" case.
    const assertionFailures = new Set(assertions.filter((a) => !a.ok && !a.directive).map((a) => `not ok ${a.n} - ${a.description}`));
    const hostFailures = c.failures.filter((f) => !assertionFailures.has(f));
    if (c.skipped && !assertions.length) {
      sTests++;
      sSkip++;
      body.push(`    <testcase classname="${classname}" name="${xmlEscape(c.name)}" time="${secs(c.durationMs)}">\n      <skipped message="${xmlEscape(c.skipped)}"/>\n    </testcase>`);
    } else if (hostFailures.length || !assertions.length) {
      sTests++;
      const name = xmlEscape(assertions.length ? `${c.name} (harness)` : c.name);
      if (!c.ok && hostFailures.length) {
        sFail++;
        const trace = c.traceFile ? `\ntrace: ${c.traceFile}` : "";
        body.push(
          `    <testcase classname="${classname}" name="${name}" time="${secs(c.durationMs)}">\n` +
            `      <failure message="${xmlEscape(hostFailures[0])}" type="harness">${cdata(hostFailures.join("\n") + trace)}</failure>\n` +
            attach +
            `    </testcase>`,
        );
      } else {
        body.push(`    <testcase classname="${classname}" name="${name}" time="${secs(c.durationMs)}"/>`);
      }
    }
    tests += sTests;
    failures += sFail;
    skipped += sSkip;
    suites.push(
      `  <testsuite name="${xmlEscape(c.name)}" file="${xmlEscape(c.file)}" tests="${sTests}" failures="${sFail}" errors="0" skipped="${sSkip}" time="${secs(c.durationMs)}">\n` +
        body.join("\n") +
        (body.length ? "\n" : "") +
        `  </testsuite>`,
    );
  }
  const total = cases.reduce((s, c) => s + c.durationMs, 0);
  out.push(`<testsuites name="${xmlEscape(suiteName)}" tests="${tests}" failures="${failures}" errors="0" skipped="${skipped}" time="${secs(total)}">`);
  out.push(...suites);
  out.push("</testsuites>");
  return out.join("\n") + "\n";
}

/**
 * `v86-balloon merge`: the reports of `--shard i/n` runs (TAP 13, KTAP or JUnit, as this harness writes
 * them) joined into one, top-level tests renumbered in the order the files are given.
 */
import { xmlEscape } from "./junit.js";

export type ReportFormat = "tap" | "ktap" | "junit";

export function detectFormat(text: string): ReportFormat {
  const head = text.trimStart();
  if (head.startsWith("<?xml") || head.startsWith("<testsuites")) return "junit";
  if (head.startsWith("KTAP version")) return "ktap";
  if (head.startsWith("TAP version") || /^1\.\.\d+/.test(head)) return "tap";
  throw new Error("not a TAP, KTAP or JUnit report of this harness");
}

const RESULT = /^(not )?ok (\d+)\b(.*)$/;

/** Top-level test blocks of a TAP/KTAP report: each ends with its result line (TAP: and its YAML block). */
function tapBlocks(text: string, format: "tap" | "ktap"): { blocks: string[][]; bail: string | null } {
  const lines = text.replace(/\r/g, "").split("\n");
  const blocks: string[][] = [];
  let cur: string[] = [];
  let bail: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (/^(K?TAP version \d+|1\.\.\d+)$/.test(l) || l === "") continue;
    if (l.startsWith("Bail out!")) {
      bail = l;
      continue;
    }
    cur.push(l);
    if (!RESULT.test(l)) continue;
    if (format === "tap" && lines[i + 1] === "  ---") {
      for (i++; i < lines.length; i++) {
        cur.push(lines[i]);
        if (lines[i] === "  ...") break;
      }
    }
    blocks.push(cur);
    cur = [];
  }
  if (cur.length) blocks[blocks.length - 1]?.push(...cur);
  return { blocks, bail };
}

function mergeTap(texts: string[], format: "tap" | "ktap"): string {
  const all: string[][] = [];
  const bails: string[] = [];
  for (const t of texts) {
    const { blocks, bail } = tapBlocks(t, format);
    all.push(...blocks);
    if (bail) bails.push(bail);
  }
  const out = [format === "tap" ? "TAP version 13" : "KTAP version 1", `1..${all.length}`];
  all.forEach((b, i) => {
    for (const l of b) {
      const m = RESULT.exec(l);
      out.push(m ? `${m[1] ?? ""}ok ${i + 1}${m[3]}` : l);
    }
  });
  // A shard that stopped (no driver, boot failure) still says so in the merged report.
  if (bails.length) out.push(bails[0]);
  return out.join("\n") + "\n";
}

function mergeJUnit(texts: string[], name = "v86-balloon guest tests"): string {
  const suites: string[] = [];
  const sum = { tests: 0, failures: 0, errors: 0, skipped: 0, time: 0 };
  for (const t of texts) {
    for (const m of t.matchAll(/<testsuite\b[^>]*\/>|<testsuite\b[^>]*[^/]>[\s\S]*?<\/testsuite>/g)) {
      const open = /<testsuite\b[^>]*>/.exec(m[0])![0];
      const attr = (k: string) => Number(new RegExp(`\\b${k}="([\\d.]+)"`).exec(open)?.[1] ?? 0);
      sum.tests += attr("tests");
      sum.failures += attr("failures");
      sum.errors += attr("errors");
      sum.skipped += attr("skipped");
      sum.time += attr("time");
      suites.push(`  ${m[0]}`);
    }
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xmlEscape(name)}" tests="${sum.tests}" failures="${sum.failures}" errors="${sum.errors}" skipped="${sum.skipped}" time="${sum.time.toFixed(3)}">`,
    ...suites,
    "</testsuites>",
  ].join("\n") + "\n";
}

/** Merges reports of one format (all files must agree). */
export function mergeReports(texts: string[]): { format: ReportFormat; text: string } {
  if (!texts.length) throw new Error("nothing to merge");
  const formats = texts.map(detectFormat);
  const format = formats[0];
  const other = formats.findIndex((f) => f !== format);
  if (other >= 0) throw new Error(`cannot merge ${format} with ${formats[other]} (file ${other + 1})`);
  return { format, text: format === "junit" ? mergeJUnit(texts) : mergeTap(texts, format) };
}

/** Did every test in a merged report pass? (TAP/KTAP: no top-level `not ok`, no bail-out; JUnit: no failures/errors.) */
export function reportPassed(format: ReportFormat, text: string): boolean {
  if (format === "junit") return !/<testsuites\b[^>]*\b(failures|errors)="[1-9]/.test(text);
  return !/^(not ok \d+|Bail out!)/m.test(text);
}

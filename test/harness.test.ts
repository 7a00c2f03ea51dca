// Unit tests of the guest test harness: TAP parser/writer, JUnit, sharding, descriptors, grouping,
// console exec + timeouts, host steps, upload — all without booting a guest.
import { describe, expect, it } from "vitest";
import { parseTap, writeTap, type ReportCase } from "../src/harness/tap.js";
import { writeJUnit } from "../src/harness/junit.js";
import { parseShard, shardItems } from "../src/harness/shard.js";
import {
  faultByName, parseBytes, parseDescriptor, parseDuration, parseFeatureSpec, parsePages, resolveFeatures,
} from "../src/harness/descriptor.js";
import { groupTests } from "../src/harness/plan.js";
import { TimeoutError, uploadFile } from "../src/harness/serial.js";
import { runHostStep, StepError } from "../src/harness/host-steps.js";
import { parseArgs } from "../src/harness/cli.js";
import { expandTestArgs, isTestScript } from "../src/harness/files.js";
import { conformanceFailure } from "../src/harness/session.js";
import type { BalloonHostLike, PlannedTest } from "../src/harness/types.js";
import { fakeGuest, withFiles } from "./support/fake-guest.js";

describe("TAP parser", () => {
  it("parses plan, passes, failures, directives and diagnostics", () => {
    const r = parseTap(["1..4", "ok 1 - first", "not ok 2 - second", "# got 3", "# want 4", "ok 3 - third # SKIP no bit 7", "not ok 4 - fourth # TODO later"].join("\n"));
    expect(r.plan).toBe(4);
    expect(r.assertions.map((a) => [a.n, a.ok, a.description, a.directive])).toEqual([
      [1, true, "first", null], [2, false, "second", null], [3, true, "third", "skip"], [4, false, "fourth", "todo"],
    ]);
    expect(r.assertions[1].diag).toEqual(["got 3", "want 4"]);
    expect(r.assertions[2].reason).toBe("no bit 7");
    expect([r.passed, r.failed, r.skipped, r.todo]).toEqual([1, 1, 1, 1]);
    expect(r.ok).toBe(false);
  });

  it("accepts a trailing plan, missing numbers and noise lines", () => {
    const r = parseTap("[  12.3] virtio_balloon: something\r\nok - a\nok\n@@HOST target 1M\nok 3 b\n1..3\n");
    expect(r.ok).toBe(true);
    expect(r.assertions.map((a) => a.description)).toEqual(["a", "", "b"]);
  });

  it("reports plan mismatches, missing plans and no output", () => {
    expect(parseTap("1..3\nok 1\nok 2").problems).toEqual(["planned 3 test(s) but ran 2"]);
    expect(parseTap("ok 1").problems).toEqual(["no plan (1..N) printed"]);
    expect(parseTap("hello").problems[0]).toMatch(/no TAP output/);
    expect(parseTap("1..2\nok 1\nok 3").problems[0]).toMatch(/out of sequence/);
    expect(parseTap("1..2\nok 1\n1..2\nok 2").problems[0]).toMatch(/more than one plan/);
  });

  it("handles skip-all and bail out", () => {
    const s = parseTap("1..0 # SKIP STATS_VQ not negotiated");
    expect(s.skipAll).toBe("STATS_VQ not negotiated");
    expect(s.ok).toBe(true);
    const b = parseTap("1..5\nok 1\nBail out! no balloon-memcheck\nok 2");
    expect(b.bailOut).toBe("no balloon-memcheck");
    expect(b.assertions).toHaveLength(1);
    expect(b.ok).toBe(false);
  });

  it("keeps a '#' that is not a directive in the description", () => {
    expect(parseTap("1..1\nok 1 - page #3 ok").assertions[0].description).toBe("page # 3 ok");
  });
});

const cases: ReportCase[] = [
  { name: "inflate", file: "t/inflate.sh", ok: true, durationMs: 1200, failures: [], tap: parseTap("1..2\nok 1 - a\nok 2 - b # SKIP x") },
  {
    name: "memcheck <&>", file: "t/mem.sh", ok: false, durationMs: 3000,
    failures: ["not ok 1 - pattern intact", "device conformance violation [deflate-not-inflated]: bad"],
    tap: parseTap("1..1\nnot ok 1 - pattern intact\n# first bad word at 0x1000"), serial: "log ]]> line\x1b[0m",
    traceFile: "traces/mem.json",
  },
  { name: "boot", file: "t/boot.sh", ok: false, durationMs: 90000, failures: ["boot failed: timed out"] },
  { name: "skipped", file: "t/s.sh", ok: true, skipped: "no bit 7", durationMs: 10, failures: [] },
];

describe("report writers", () => {
  it("writes TAP 13 with subtests and a YAML block for failures", () => {
    const t = writeTap(cases);
    expect(t).toMatch(/^TAP version 13\n1\.\.4\n/);
    expect(t).toContain("    ok 2 - b # SKIP x");
    expect(t).toContain("not ok 2 - memcheck <&>");
    expect(t).toContain('    - "device conformance violation [deflate-not-inflated]: bad"');
    expect(t).toContain("  serial: |-\n    log ]]> line");
    expect(t).toContain("ok 4 - skipped # SKIP no bit 7");
    // the whole run re-parses as TAP
    const again = parseTap(t.split("\n").filter((l) => !l.startsWith(" ")).join("\n"));
    expect(again.plan).toBe(4);
    expect(again.failed).toBe(2);
  });

  it("writes well-formed JUnit with failures, skips, harness cases and the serial log", () => {
    const x = writeJUnit(cases);
    expect(x).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites [^>]*tests="6" failures="3" errors="0" skipped="2"/);
    expect(x).toContain('name="memcheck &lt;&amp;&gt;"');
    expect(x).toContain('<failure message="not ok 1 - pattern intact" type="assertion"><![CDATA[first bad word at 0x1000]]></failure>');
    expect(x).toContain('name="memcheck &lt;&amp;&gt; (harness)"');
    expect(x).toContain("<system-out><![CDATA[log ]]]]><![CDATA[> line\\x1b[0m]]></system-out>");
    expect(x).toContain('<failure message="boot failed: timed out" type="harness">');
    expect(x).toContain("trace: traces/mem.json");
    expect(x).toContain('<skipped message="no bit 7"/>');
    // balanced tags
    for (const tag of ["testsuites", "testsuite", "testcase", "failure", "system-out"]) {
      const open = (x.match(new RegExp(`<${tag}[ >]`, "g")) ?? []).length;
      const selfClosed = (x.match(new RegExp(`<${tag} [^>]*/>`, "g")) ?? []).length;
      const close = (x.match(new RegExp(`</${tag}>`, "g")) ?? []).length;
      expect(open - selfClosed, tag).toBe(close);
    }
  });
});

describe("sharding", () => {
  const ids = ["d.sh", "a.sh", "c.sh", "e.sh", "b.sh"];
  it("parses i/n and rejects nonsense", () => {
    expect(parseShard("2/3")).toEqual({ index: 2, total: 3 });
    for (const bad of ["0/2", "3/2", "x", "1/0"]) expect(() => parseShard(bad)).toThrow(/shard/);
  });
  it("is a deterministic partition independent of input order", () => {
    const parts = [1, 2, 3].map((i) => shardItems(ids, { index: i, total: 3 }, (x) => x));
    expect(parts).toEqual([["a.sh", "d.sh"], ["b.sh", "e.sh"], ["c.sh"]]);
    expect(parts.flat().sort()).toEqual([...ids].sort());
    expect(shardItems([...ids].reverse(), { index: 1, total: 3 }, (x) => x)).toEqual(parts[0]);
    expect(shardItems(ids, null, (x) => x)).toEqual(ids);
  });
});

describe("descriptors", () => {
  it("reads the header block", () => {
    const d = parseDescriptor(
      [
        "#!/bin/sh", "# test: round trip", "# features: stats,reporting", "# fault: lie-about-init, padding-bits",
        "# memory: 256M", "# cmdline: init_on_free=1", "# cmdline: page_poison=1", "# timeout: 90s", "# boot: fresh",
        "# allow-diagnostic: inflate-already-inflated", "# expect-diagnostic: deflate-not-inflated", "# host: target 32M",
        "# requires: stats, hinting", "# Note: prose is ignored", "", ". /tests/lib.sh", "# features: none  (not in the header any more)",
      ].join("\n"),
    );
    expect(d).toEqual({
      name: "round trip",
      features: { exact: true, on: ["STATS_VQ", "PAGE_REPORTING"], off: [] },
      faults: ["lieAboutInit", "setPaddingBits"],
      memoryMiB: 256,
      cmdline: "init_on_free=1 page_poison=1",
      timeoutMs: 90000,
      fresh: true,
      allowDiagnostics: ["inflate-already-inflated"],
      expectDiagnostics: ["deflate-not-inflated"],
      hostSteps: ["target 32M"],
      requires: ["STATS_VQ", "FREE_PAGE_HINT"],
    });
  });

  it("names the file and line of a bad value", () => {
    expect(() => parseDescriptor("#!/bin/sh\n# features: stats,warp-drive", "x.sh")).toThrow(/x\.sh:2: unknown feature "warp-drive"/);
    expect(() => parseDescriptor("# fault: explode", "y.sh")).toThrow(/y\.sh:1: unknown fault "explode"; known: lie-about-init/);
    expect(() => parseDescriptor("# memory: 4G")).toThrow(/16\.\.890/);
    expect(() => parseDescriptor("# timeout: soon")).toThrow(/bad duration/);
  });

  it("resolves feature offers: exact lists, edits, CLI then test", () => {
    const all = resolveFeatures();
    expect(Object.values(all).every(Boolean)).toBe(true);
    const exact = resolveFeatures(parseFeatureSpec("stats,STATS_VQ,page-reporting"));
    expect(Object.entries(exact).filter(([, v]) => v).map(([k]) => k)).toEqual(["STATS_VQ", "PAGE_REPORTING"]);
    const edited = resolveFeatures(parseFeatureSpec("stats,hint"), parseFeatureSpec("+reporting,-hint"));
    expect(Object.entries(edited).filter(([, v]) => v).map(([k]) => k)).toEqual(["STATS_VQ", "PAGE_REPORTING"]);
    expect(Object.values(resolveFeatures(parseFeatureSpec("none"))).some(Boolean)).toBe(false);
    expect(resolveFeatures(parseFeatureSpec("-deflate-on-oom")).DEFLATE_ON_OOM).toBe(false);
  });

  it("parses sizes, durations and fault names", () => {
    expect(parseBytes("64M")).toBe(64 << 20);
    expect(parsePages("64M")).toBe(16384);
    expect(parsePages("100")).toBe(100);
    expect(parsePages("100p")).toBe(100);
    expect(parseDuration("2m")).toBe(120000);
    expect(parseDuration("1500")).toBe(1500);
    expect(faultByName("lie-about-init")).toBe("lieAboutInit");
    expect(faultByName("shortReportUsedLength")).toBe("shortReportUsedLength");
    expect(faultByName("lie-init")).toBe("lieAboutInit");
  });
});

function planned(id: string, header = ""): PlannedTest {
  return { id, name: id, content: header, descriptor: parseDescriptor(header), timeoutMs: 1000 };
}

describe("grouping", () => {
  const defaults = { memoryMiB: 128, faults: [], timeoutTestMs: 1000, timeoutBootMs: 1000 };
  it("shares a guest between tests with the same boot config", () => {
    const g = groupTests(
      [planned("a"), planned("b", "# features: -hint"), planned("c"), planned("d", "# boot: fresh"), planned("e", "# memory: 256")],
      defaults,
    );
    expect(g.map((x) => x.tests.map((t) => t.id))).toEqual([["a", "c"], ["b"], ["d"], ["e"]]);
    expect(g[2].fresh).toBe(true);
    expect(g[3].boot.memoryMiB).toBe(256);
  });
  it("splits groups so every worker has a guest", () => {
    const g = groupTests(["a", "b", "c", "d", "e"].map((x) => planned(x)), defaults, 4);
    expect(g.length).toBe(4);
    expect(g.flatMap((x) => x.tests.map((t) => t.id)).sort()).toEqual(["a", "b", "c", "d", "e"]);
  });
});


describe("guest shell", () => {
  it("returns a command's lines and status, echo or not", async () => {
    const g = fakeGuest(() => ({ out: ["hello", "world"], status: 3 }));
    const r = await g.shell.exec("printf x", 1000);
    expect(r.lines).toEqual(["hello", "world"]);
    expect(r.status).toBe(3);
    await expect(g.shell.check("false", 1000)).rejects.toThrow(/exited with 3/);
  });

  it("times out with the last serial lines", async () => {
    const g = fakeGuest(() => "hang");
    g.serial.push("[ 1.0] kernel says hi\n");
    const err = await g.shell.exec("sleep 100", 50).catch((e) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.message).toMatch(/timed out after 50 ms running `sleep 100`; last serial lines:\n[\s\S]*kernel says hi/);
  });

  it("uploads in chunks that fit a tty line and checks the SHA-256", async () => {
    const files = new Map<string, string>();
    const g = fakeGuest(withFiles(() => ({}), files));
    const content = "#!/bin/sh\n" + "echo 'ü tab\there'\n".repeat(600);
    const r = await uploadFile(g.shell, "/tmp/harness/1.sh", content);
    expect(r.chunks).toBeGreaterThan(3);
    expect(files.get("/tmp/harness/1.sh")).toBe(content);
    expect(Math.max(...g.sent.map((s) => s.length))).toBeLessThan(4000);
  });

  it("detects a corrupted upload", async () => {
    const g = fakeGuest((cmd) => (cmd.startsWith("base64") ? { out: ["0000  /x"] } : {}));
    await expect(uploadFile(g.shell, "/x", "data")).rejects.toThrow(/corrupted/);
  });
});

function fakeBalloon(lag = 5): BalloonHostLike & { pages: number } {
  const b = {
    target: 0,
    pages: 0,
    get actual() {
      return this.pages;
    },
    setTarget(p: number) {
      this.target = p;
      setTimeout(() => (this.pages = p), lag);
    },
    on() {},
    counters: () => ({ pagesInflated: 7, requests: { inflate: 2 } }),
  };
  return b;
}

describe("host steps", () => {
  const ctx = (balloon: BalloonHostLike | null) => ({ balloon, trace: () => {}, diagnostics: () => [{ kind: "x", severity: "violation" }] });
  it("sets targets and waits for actual", async () => {
    const b = fakeBalloon();
    expect(await runHostStep("target 32M", ctx(b))).toBe("target=8192");
    expect(await runHostStep("wait", ctx(b))).toMatch(/^actual=8192 ms=\d+$/);
    expect(await runHostStep("cycles 3 1M 0", ctx(b))).toMatch(/^cycles=3 ms=\d+ per_cycle_ms=/);
    expect(await runHostStep("counters", ctx(b))).toBe("pagesInflated=7 requests.inflate=2");
    expect(await runHostStep("await pagesInflated 7", ctx(b))).toMatch(/^pagesInflated=7/);
    expect(await runHostStep("diagnostics", ctx(b))).toBe("count=1 violations=1 kinds=x");
  });
  it("refuses clearly", async () => {
    const stuck = { ...fakeBalloon(), setTarget() {} } as BalloonHostLike;
    await expect(runHostStep("inflate 1M 30ms", ctx(stuck))).rejects.toThrow(/actual stayed at 0 pages, wanted 256/);
    await expect(runHostStep("warp 9", ctx(fakeBalloon()))).rejects.toThrow(StepError);
    await expect(runHostStep("target 1M", ctx(null))).rejects.toThrow(/no balloon device/);
  });
});

describe("CLI and discovery", () => {
  it("parses the documented options", () => {
    const o = parseArgs(["test", "a.sh", "--features", "stats,reporting", "--fault", "lie-init", "--fault=padding-bits", "--workers", "2", "--shard", "1/2", "--timeout-test", "90s", "--timeout-boot", "60000", "--tap", "-", "--junit", "o.xml", "--trace-dir", "tr", "--browser", "--kernel", "k", "--initrd", "i", "--cmdline", "console=ttyS0"]);
    expect(o).toMatchObject({ files: ["a.sh"], features: "stats,reporting", faults: ["lie-init", "padding-bits"], workers: 2, shard: "1/2", timeoutTestMs: 90000, timeoutBootMs: 60000, tapStdout: true, junit: "o.xml", traceDir: "tr", browser: true, kernel: "k", initrd: "i", cmdline: "console=ttyS0" });
    expect(() => parseArgs(["--workers", "0"])).toThrow(/positive/);
    expect(() => parseArgs(["--frobnicate"])).toThrow(/unknown option/);
  });
  it("finds the project suite and skips libraries", () => {
    expect(isTestScript("lib.sh")).toBe(false);
    expect(isTestScript("_helper.sh")).toBe(false);
    const all = expandTestArgs([]);
    expect(all.length).toBeGreaterThan(3);
    expect(all.every((p) => isTestScript(p))).toBe(true);
    expect(expandTestArgs(["guest/initramfs/tests/inflate-*.sh"]).map((p) => p.split("/").pop())).toEqual(["inflate-deflate.sh"]);
    expect(() => expandTestArgs(["no/such/*.sh"])).toThrow();
  });
  it("names the broken rule in a conformance failure", () => {
    expect(conformanceFailure({ kind: "deflate-not-inflated", severity: "violation", message: "PFN 12 was never inflated", queue: 1 })).toMatch(
      /^device conformance violation \[deflate-not-inflated\] \(queue 1\): PFN 12 was never inflated — rule: virtio 1\.2 §5\.5\.6 Device Operation: "To remove memory/,
    );
  });
});

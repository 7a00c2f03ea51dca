// The harness's run-level behaviour without booting Linux: the guest TAP library's skip semantics (run by
// the host's /bin/sh), crash detection, finding the shell by marker, stopping a run once when the guest
// cannot test the balloon, pre-flight verdicts on kernel configs, --list, and the CLI's exit codes.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parseTap, writeKtap, writeTap, type ReportCase } from "../src/harness/tap.js";
import { writeJUnit } from "../src/harness/junit.js";
import { mergeReports, reportPassed } from "../src/harness/merge.js";
import { appendModules, loadOrder, type KernelModule } from "../src/harness/modules.js";
import { CrashWatch, findShell, KernelCrash, SerialLines, ShellNotFound } from "../src/harness/serial.js";
import { runGroup } from "../src/harness/session.js";
import { emptyDescriptor, resolveFeatures } from "../src/harness/descriptor.js";
import { parseKernelConfig, preflight } from "../src/harness/kernel-image.js";
import { listTests } from "../src/harness/runner.js";
import { main } from "../src/harness/cli.js";
import { LIB_SCRIPT } from "../src/harness/files.js";
import type { PlannedTest, TestGroup } from "../src/harness/types.js";
import { fakeGuest, fakeLauncher, withFiles } from "./support/fake-guest.js";

/** Runs `body` after sourcing the guest's lib.sh in the host's POSIX shell; returns stdout. */
function libRun(body: string): string {
  try {
    return execFileSync("sh", ["-c", `. ${LIB_SCRIPT}\n${body}`], { encoding: "utf8" });
  } catch (e) {
    return (e as { stdout: string }).stdout;
  }
}

describe("skip semantics (guest lib.sh + parser)", () => {
  it("skip_all after plan is a skip, not a second plan", () => {
    const out = libRun('plan 4\nskip_all "STATS_VQ not negotiated"\nok never');
    expect(out).toBe("1..0 # SKIP STATS_VQ not negotiated\n");
    const t = parseTap(out);
    expect(t.skipAll).toBe("STATS_VQ not negotiated");
    expect(t.ok).toBe(true);
  });

  it("skip_all instead of a plan, and the old `1..N` then `1..0 # SKIP` stream", () => {
    expect(parseTap(libRun('skip_all "no driver"')).skipAll).toBe("no driver");
    const old = parseTap("1..4\n1..0 # SKIP PAGE_REPORTING not negotiated");
    expect(old.skipAll).toBe("PAGE_REPORTING not negotiated");
    expect(old.problems).toEqual([]);
  });

  it("skip_all after assertions skips the rest of the plan", () => {
    const t = parseTap(libRun('plan 3\nok first\nskip_all "gone"'));
    expect(t.problems).toEqual([]);
    expect(t.passed).toBe(1);
    expect(t.skipped).toBe(2);
  });

  it("a plan with no assertion printed is no plan: the run fails", () => {
    const t = parseTap(libRun("plan 3\nexit 1"));
    expect(t.ok).toBe(false);
    expect(t.problems[0]).toMatch(/no TAP output/);
  });

  it("require_balloon bails out when no driver is bound", () => {
    const t = parseTap(libRun("plan 3\nballoon_dev() { return 1; }\nrequire_balloon\nok unreachable"));
    expect(t.assertions[0]).toMatchObject({ ok: false, description: "a driver is bound to virtio device 5 (balloon)" });
    expect(t.bailOut).toMatch(/no balloon driver bound/);
    expect(t.ok).toBe(false);
  });
});

describe("kernel crash detection", () => {
  it("fails on a WARNING with the report up to its end marker", async () => {
    const s = new SerialLines();
    const w = new CrashWatch(s);
    s.push("[    1.0] virtio_balloon virtio0: ok\n[    2.5] WARNING: CPU: 0 PID: 1 at mm/balloon.c:10 f+0x1/0x2\n[    2.5] Call Trace:\n");
    s.push("[    2.5] ---[ end trace 0000000000000000 ]---\n");
    const e = await w.crashed.catch((x) => x);
    expect(e).toBeInstanceOf(KernelCrash);
    expect(e.line).toBe("WARNING: CPU: 0 PID: 1 at mm/balloon.c:10 f+0x1/0x2");
    expect(e.excerpt).toMatch(/virtio0: ok[\s\S]*Call Trace[\s\S]*end trace/);
  });

  it("ignores the patterns inside a line, and can be configured off", async () => {
    const s = new SerialLines();
    const w = new CrashWatch(s, ["Kernel panic"]);
    const off = new CrashWatch(s, []);
    s.push("echo WARNING: not a kernel report\n# expected BUG: here\n");
    expect(w.first).toBeNull();
    s.push("[   3.1] Kernel panic - not syncing: sysrq triggered crash\n");
    expect(w.first).toBe("Kernel panic - not syncing: sysrq triggered crash");
    expect(off.first).toBeNull();
    w.stop();
    off.stop();
  });
});

describe("finding the shell", () => {
  it("retries its marker until a shell answers, whatever the prompt", async () => {
    let up = false;
    setTimeout(() => (up = true), 120);
    const g = fakeGuest((cmd) => (up && cmd === "true" ? {} : "hang"));
    const ms = await findShell(g.shell, 5000, 30);
    expect(ms).toBeGreaterThan(0);
    expect(g.sent.length).toBeGreaterThan(1);
  });

  it("names what it waited for and where the contract is", async () => {
    const g = fakeGuest(() => "hang");
    await expect(findShell(g.shell, 100, 30)).rejects.toThrow(ShellNotFound);
    await expect(findShell(g.shell, 100, 30)).rejects.toThrow(/initramfs contract.*src\/harness\/README\.md/);
  });
});

function planned(id: string): PlannedTest {
  return { id, name: id, content: "#!/bin/sh\n. /tests/lib.sh\nplan 1\nok fine\n", descriptor: emptyDescriptor(), timeoutMs: 5000 };
}

const group = (tests: PlannedTest[]): TestGroup => ({
  key: "k",
  boot: { memoryMiB: 128, features: resolveFeatures(), faults: [], bootTimeoutMs: 3000 },
  tests,
  fresh: false,
});

describe("a guest that cannot test the balloon stops the run once", () => {
  it("no driver bound: one failure naming the module, the rest not run, untestable", async () => {
    const launcher = fakeLauncher({ behaviour: withFiles((cmd) => (cmd.includes("/sys/bus/virtio/devices") ? { out: ["nodriver", "modules: "] } : {})) });
    const r = await runGroup(group([planned("a"), planned("b")]), { launcher, libScript: "# lib" });
    expect(r).toHaveLength(1);
    expect(r[0].ok).toBe(false);
    expect(r[0].untestable).toBe(true);
    expect(r[0].stopRun).toMatch(/no driver bound to virtio device 5.*CONFIG_VIRTIO_BALLOON=m needs --modules/);
    expect(launcher.destroyed).toBe(1);
  });

  it("a driver whose probe failed is a test failure, not an untestable kernel", async () => {
    const launcher = fakeLauncher({ behaviour: withFiles((cmd) => (cmd.includes("/sys/bus/virtio/devices") ? { out: ["unbound", "modules: "] } : {})) });
    const r = await runGroup(group([planned("a")]), { launcher, libScript: "# lib" });
    expect(r[0].untestable).toBe(false);
    expect(r[0].stopRun).toMatch(/probe failed/);
  });

  it("a panic before the shell answers is reported at once, with the report", async () => {
    const launcher = fakeLauncher({
      boot: ["[ 0.9] Run /init as init process", "[ 1.0] Kernel panic - not syncing: Attempted to kill init!", "[ 1.0] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---"],
      behaviour: () => "hang",
    });
    const t0 = Date.now();
    const r = await runGroup({ ...group([planned("a")]), boot: { ...group([]).boot, bootTimeoutMs: 60_000 } }, { launcher, libScript: "# lib" });
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r[0].untestable).toBe(true);
    expect(r[0].failures[0]).toMatch(/kernel crashed before the shell answered[\s\S]*Attempted to kill init/);
  });

  it("a crash during a test fails that test with the report; the next test gets a fresh guest", async () => {
    let crashed = false;
    let push: (t: string) => void = () => {};
    const base = fakeLauncher({
      behaviour: withFiles((cmd) => {
        if (cmd.includes("/sys/bus/virtio/devices")) return { out: ["bound virtio_balloon"] };
        if (cmd.includes("sh /tmp/harness/1.sh") && !crashed) {
          crashed = true;
          setTimeout(() => push("[ 5.0] BUG: kernel NULL pointer dereference, address: 00000000\n[ 5.0] ---[ end trace 0 ]---\n"), 5);
          return "hang";
        }
        if (cmd.includes("sh /tmp/harness/")) return { out: ["1..1", "ok 1 - fine"] };
        return {};
      }),
    });
    const launcher = (async (b, onSerial, onBalloon) => {
      push = onSerial;
      return base(b, onSerial, onBalloon);
    }) as typeof base;
    const r = await runGroup(group([planned("a"), planned("b")]), { launcher, libScript: "# lib" });
    expect(r[0].ok).toBe(false);
    expect(r[0].failures[0]).toMatch(/^kernel crash: BUG: kernel NULL pointer dereference/);
    expect(r[1].ok).toBe(true);
    expect(base.destroyed).toBe(2);
  });
});

describe("boot-time diagnostics", () => {
  const quirk = { kind: "notify-before-driver-ok", severity: "tolerated", message: "notify for queue 2 before DRIVER_OK" };
  const withBootDiag = () => {
    let emitDiag: (d: unknown) => void = () => {};
    const balloon = { target: 0, actual: 0, setTarget() {}, on: (name: string, fn: (e: unknown) => void) => name === "diagnostic" && (emitDiag = fn) };
    const inner = fakeLauncher({ balloon, behaviour: withFiles((cmd) => (cmd.includes("/sys/bus/virtio/devices") ? { out: ["bound virtio_balloon"] } : cmd.includes("sh /tmp/harness/") ? { out: ["1..1", "ok 1 - fine"] } : {})) });
    return (async (b, onSerial, onBalloon) => {
      const h = await inner(b, onSerial, onBalloon);
      emitDiag(quirk); // the driver's probe, before any test
      return h;
    }) as typeof inner;
  };

  it("the stock driver's probe quirk is a note on the first test; --strict fails it", async () => {
    const r = await runGroup(group([planned("a")]), { launcher: withBootDiag(), libScript: "# lib" });
    expect(r[0].ok).toBe(true);
    expect(r[0].notes?.[0]).toMatch(/^at boot \(known driver quirk, --strict fails it\): device conformance violation \[notify-before-driver-ok\]/);
    expect(writeTap(r)).toMatch(/# at boot .*\nok 1 - a/);
    const strict = await runGroup(group([planned("a")]), { launcher: withBootDiag(), libScript: "# lib", strict: true });
    expect(strict[0].ok).toBe(false);
  });
});

describe("pre-flight on the kernel config", () => {
  const cfg = (extra: string) =>
    parseKernelConfig(`CONFIG_PCI=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_SERIAL_8250_CONSOLE=y\nCONFIG_MODULES=y\nCONFIG_PAGE_REPORTING=y\nCONFIG_BALLOON_COMPACTION=y\nCONFIG_DEBUG_FS=y\n${extra}`);

  it("a modular balloon needs --modules, and the message says so", () => {
    const r = preflight({ config: cfg("CONFIG_VIRTIO=m\nCONFIG_VIRTIO_PCI=m\nCONFIG_VIRTIO_BALLOON=m"), source: "cfg", modules: null });
    expect(r.errors).toContain("CONFIG_VIRTIO_BALLOON=m and no --modules given: pass --modules DIR (or the kernel's .deb) with virtio_balloon.ko, the virtio-balloon driver");
  });

  it("names a module missing from --modules, a driver not built at all, and a 64-bit kernel", () => {
    const r = preflight({ config: cfg("CONFIG_VIRTIO=m\nCONFIG_VIRTIO_PCI=m\nCONFIG_VIRTIO_BALLOON=m"), source: "cfg", modules: { arg: "mods/", names: new Set(["virtio", "virtio_pci"]) } });
    expect(r.errors).toEqual(["CONFIG_VIRTIO_BALLOON=m but --modules mods/ has no virtio_balloon.ko (the virtio-balloon driver)"]);
    const none = preflight({ config: cfg("CONFIG_VIRTIO=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_64BIT=y"), source: "cfg", modules: null });
    expect(none.errors.join("\n")).toMatch(/CONFIG_64BIT=y: v86 emulates a 32-bit[\s\S]*CONFIG_VIRTIO_BALLOON is not set/);
  });

  it("a built-in balloon passes; a missing PAGE_REPORTING is a note, not a stop", () => {
    const r = preflight({ config: parseKernelConfig("CONFIG_PCI=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_SERIAL_8250_CONSOLE=y\nCONFIG_VIRTIO=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_BALLOON=y"), source: "c", modules: null });
    expect(r.errors).toEqual([]);
    expect(r.notes.join("\n")).toMatch(/CONFIG_PAGE_REPORTING is not set: .*skipped/);
  });
});

describe("CLI: --list and exit codes", () => {
  it("--list shows every shard's tests and boot groups", () => {
    const out = listTests({ shard: "2/3" });
    expect(out).toMatch(/^shard 1\/3: \d+ test\(s\)/m);
    expect(out).toMatch(/^shard 2\/3 \(selected\)/m);
    expect(out).toMatch(/guest\/initramfs\/tests\/stats\.sh {2}# requires stats/);
  });

  it("no test selected: 2; a missing kernel: 2, or 125 under --bisect, naming the file", async () => {
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(["test", "--filter", "no-such-test"])).toBe(2);
      expect(await main(["test", "--kernel", "/missing/bzImage"])).toBe(2);
      expect(await main(["test", "--kernel", "/missing/bzImage", "--bisect"])).toBe(125);
      expect(await main(["test", "--modules", "/missing/mods", "--bisect"])).toBe(125);
    } finally {
      process.stderr.write = write;
    }
    const text = err.join("");
    expect(text).toMatch(/no test selected \(--filter "no-such-test" left none of \d+ test\(s\)\)/);
    expect(text).toMatch(/--kernel \/missing\/bzImage: no such file/);
    expect(text).not.toMatch(/build:guest/);
    expect(text).toMatch(/--modules \/missing\/mods: no such file or directory/);
  });
});

describe("reports: KTAP, JUnit times and names, merge", () => {
  const tapOf = (text: string, times: number[]) => parseTap(text, times, 1000);
  const cases = (prefix: string): ReportCase[] => [
    { name: `${prefix}-pass`, file: `${prefix}/a.sh`, ok: true, durationMs: 4000, failures: [], tap: tapOf("1..2\nok 1 - host: balloon at 32 MiB [actual=8192 after 812 ms]\nok 2 - fell (actual=3 pages)", [1000, 1500, 3500]) },
    { name: `${prefix}-fail`, file: `${prefix}/b.sh`, ok: false, durationMs: 1000, failures: ["not ok 1 - broke"], serial: "last line", tap: tapOf("1..1\nnot ok 1 - broke\n# got 1", [1000, 1200, 1201]) },
  ];

  it("assertions carry their own time; JUnit uses it and drops host replies from names", () => {
    const c = cases("s1");
    expect(c[0].tap!.assertions.map((a) => a.ms)).toEqual([500, 2000]);
    const x = writeJUnit(c);
    expect(x).toContain('name="1 - host: balloon at 32 MiB" time="0.500"');
    expect(x).toContain('name="2 - fell" time="2.000"');
    expect(x).not.toMatch(/actual=/);
  });

  it("writes KTAP with nested subtests and diagnostics before a failed result", () => {
    const k = writeKtap([...cases("s1"), { name: "stopped", file: "c.sh", ok: false, durationMs: 0, failures: ["no driver"], stopRun: "no driver bound to virtio device 5" }]);
    expect(k.split("\n").slice(0, 5)).toEqual(["KTAP version 1", "1..3", "    KTAP version 1", "    # Subtest: s1-pass", "    1..2"]);
    expect(k).toMatch(/ {4}# got 1\n {4}not ok 1 broke\n[\s\S]*# not ok 1 - broke\n# serial: last line\nnot ok 2 s1-fail\n/);
    expect(k.trimEnd().split("\n").pop()).toBe("Bail out! no driver bound to virtio device 5");
  });

  it("merges TAP, KTAP and JUnit shards, renumbered, with exit status from the result", () => {
    for (const write of [writeTap, writeKtap]) {
      const { text } = mergeReports([write(cases("s1")), write(cases("s2"))]);
      const top = text.split("\n").filter((l) => /^(not )?ok \d/.test(l));
      expect(top).toEqual(["ok 1 - s1-pass", "not ok 2 - s1-fail", "ok 3 - s2-pass", "not ok 4 - s2-fail"].map((l) => (write === writeKtap ? l.replace(" - ", " ") : l)));
      expect(text).toMatch(/^1\.\.4$/m);
      expect(reportPassed(write === writeTap ? "tap" : "ktap", text)).toBe(false);
    }
    const j = mergeReports([writeJUnit(cases("s1")), writeJUnit([cases("s2")[0]])]);
    expect(j.format).toBe("junit");
    expect(j.text).toMatch(/<testsuites name="v86-balloon guest tests" tests="5" failures="1" errors="0" skipped="0" time="9\.000">/);
    expect((j.text.match(/<testsuite /g) ?? []).length).toBe(3);
    expect(reportPassed("junit", mergeReports([writeJUnit([cases("s2")[0]])]).text)).toBe(true);
    expect(() => mergeReports([writeTap(cases("a")), writeJUnit(cases("b"))])).toThrow(/cannot merge tap with junit/);
  });
});

describe("--modules: load order and the cpio", () => {
  const mod = (name: string, depends: string[]): KernelModule => ({ name, file: `${name}.ko`, depends, vermagic: null, data: Buffer.from(name) });
  const set = (...m: KernelModule[]) => new Map(m.map((x) => [x.name, x]));

  it("orders dependencies first and names a missing one", () => {
    const mods = set(mod("virtio_balloon", ["virtio", "virtio_ring"]), mod("virtio_ring", ["virtio"]), mod("virtio", []), mod("virtio_pci", ["virtio_ring", "virtio"]));
    expect(loadOrder(mods, ["virtio_pci", "virtio_balloon"]).map((m) => m.name)).toEqual(["virtio", "virtio_ring", "virtio_balloon", "virtio_pci"]);
    expect(() => loadOrder(set(mod("virtio_balloon", ["virtio"])), ["virtio_balloon"], "--modules d/")).toThrow("--modules d/: virtio_balloon depends on virtio, which is not among the modules (add virtio.ko)");
    expect(() => loadOrder(set(mod("a", ["b"]), mod("b", ["a"])), ["a"])).toThrow(/dependency loop/);
  });

  it("appends a newc cpio the host's cpio reads, with the loader in order", () => {
    const base = Buffer.from("07070100000001000041ed", "latin1"); // any bytes: only padding matters here
    const all = appendModules(base, [mod("virtio", []), mod("virtio_balloon", ["virtio"])]);
    const second = all.subarray(Math.ceil(base.length / 4) * 4);
    const list = execFileSync("cpio", ["-t", "--quiet"], { input: second }).toString().trim().split("\n");
    expect(list).toEqual(["lib", "lib/modules", "lib/modules/v86-balloon", "lib/modules/v86-balloon/virtio.ko", "lib/modules/v86-balloon/virtio_balloon.ko", "lib/modules/v86-balloon/load.sh"]);
    expect(second.toString("latin1")).toContain("for m in virtio virtio_balloon; do");
  });
});

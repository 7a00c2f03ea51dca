/**
 * `v86-balloon test [files/dirs/globs] [options]` — see USAGE. Exit status: 0 all passed, 1 failures,
 * 2 usage error or nothing to run; with --bisect 125 when the kernel could not be tested.
 */
import { HarnessInputError, listTests, planDefaults, prepareImages, runTests, type RunOptions } from "./runner.js";
import { parseDuration } from "./descriptor.js";
import { DEFAULT_CRASH_PATTERNS } from "./serial.js";
import { mergeReports, reportPassed } from "./merge.js";
import { readFileSync, writeFileSync } from "node:fs";
import { FAULTS, FEATURES } from "../vocabulary.js";

const FAULT_USAGE = FAULTS.map((f) => ("value" in f ? `${f.name}=${f.value.syntax}` : f.name)).join(", ");

export const USAGE = `usage: v86-balloon test [files/dirs/globs | guest:/path ...] [options]
       v86-balloon snapshot --out FILE [--memory MIB] [--commands "..."]   (see v86-balloon snapshot --help)

Boots the v86 Linux guest with the v86-balloon device and runs guest-side TAP test scripts.
No files: the project's suite (guest/initramfs/tests/*.sh).

  --kernel F --initrd F    boot your own bzImage / initramfs (default: public/guest/)
  --modules DIR|F.deb      kernel modules to append to the initramfs and load (in .modinfo depends= order)
  --kernel-config F        the kernel's .config for the pre-flight check (default: IKCONFIG in the image,
                           the config-* of a --modules .deb)
  --image-dir D            directory with bios.bin, vgabios.bin, bzImage.bin, initramfs.cpio, manifest.json
  --cmdline S              replace the kernel command line   (--append S: append to it)
  --memory MIB             guest RAM (default 128; a test's "# memory:" wins)
  --features a,b,...       feature offer: exact list, "default", "none", or edits "+reporting,-hinting"
                           (${FEATURES.map((f) => f.name).join(" ")})
  --fault NAME[=VALUE]     device fault mode, repeatable (${FAULT_USAGE})
  --browser                run in headless Chromium (/usr/bin/chromium) instead of Node
  --workers N              guests in parallel (default 1)
  --shard i/n              run the i-th of n deterministic slices
  --filter TEXT            only tests whose name or path contains TEXT
  --timeout-test MS        per-test timeout (default 120000; "90s"/"2m" work; "# timeout:" wins)
  --timeout-boot MS        per-boot timeout (default 90000; 240000 with --kernel)
  --tap FILE  --junit FILE write reports (TAP 13 / JUnit XML); TAP also goes to stdout with --tap -
  --ktap FILE              write KTAP version 1 (kselftest / KUnit style); "-" for stdout
  --trace-dir DIR          write a JSON transaction trace for every failing test (--trace-all: every test)
  --crash-on A,B           console lines that fail a test at once (default: ${DEFAULT_CRASH_PATTERNS.join(",")}; "none")
  --allow-diagnostic KIND  device diagnostics of this kind fail no test (repeatable)
  --strict                 also fail on the stock driver's known probe quirk (stats kick before DRIVER_OK)
  --no-snapshots           reuse a group's guest from test to test instead of restoring its post-boot snapshot
  --snapshot-cache DIR     keep post-boot snapshots across runs here (default ~/.cache/v86-balloon/snapshots,
                           $V86_BALLOON_CACHE); --no-snapshot-cache: always boot
  --no-driver-check        do not stop when no driver is bound to virtio device 5 after boot
  --bisect                 exit 0 pass, 1 test failure, 125 kernel untestable (for git bisect run)
  --list                   print the tests, their boot groups and each shard's contents; boot nothing
  --quiet                  no progress output

Exit status: 0 all passed, 1 a test failed, 2 usage error / no test selected / cannot start;
with --bisect, 125 instead of 1 or 2 when the kernel could not be tested (missing image, pre-flight,
boot failure, panic before the shell, no balloon driver).
`;

export type CliOptions = RunOptions & { tapStdout?: boolean; ktapStdout?: boolean; bisect?: boolean; list?: boolean };

export function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = { files: [], faults: [], progress: true };
  const args = [...argv];
  if (args[0] === "test") args.shift();
  const val = (flag: string) => {
    const v = args.shift();
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  while (args.length) {
    const a = args.shift()!;
    const eq = a.startsWith("--") && a.includes("=") ? a.indexOf("=") : -1;
    if (eq > 0) {
      args.unshift(a.slice(eq + 1));
      args.unshift(a.slice(0, eq));
      continue;
    }
    switch (a) {
      case "--kernel": o.kernel = val(a); break;
      case "--initrd": o.initrd = val(a); break;
      case "--modules": o.modules = val(a); break;
      case "--kernel-config": o.kernelConfig = val(a); break;
      case "--crash-on": { const v = val(a); o.crashPatterns = v === "none" ? [] : v.split(",").filter(Boolean); break; }
      case "--no-driver-check": o.driverCheck = false; break;
      case "--strict": o.strict = true; break;
      case "--no-snapshots": o.snapshots = false; break;
      case "--snapshot-cache": o.snapshotCache = val(a); break;
      case "--no-snapshot-cache": o.snapshotCache = false; break;
      case "--allow-diagnostic": (o.allowDiagnostics ??= []).push(...val(a).split(",").filter(Boolean)); break;
      case "--bisect": o.bisect = true; break;
      case "--list": o.list = true; break;
      case "--image-dir": o.imageDir = val(a); break;
      case "--cmdline": o.cmdline = val(a); break;
      case "--append": o.cmdlineExtra = val(a); break;
      case "--memory": o.memoryMiB = Number(val(a)); break;
      case "--features": o.features = val(a); break;
      case "--fault": case "--faults": o.faults!.push(...val(a).split(",").filter(Boolean)); break;
      case "--browser": o.browser = true; break;
      case "--workers": case "-j": o.workers = Number(val(a)); break;
      case "--shard": o.shard = val(a); break;
      case "--filter": o.filter = val(a); break;
      case "--timeout-test": o.timeoutTestMs = parseDuration(val(a)); break;
      case "--timeout-boot": o.timeoutBootMs = parseDuration(val(a)); break;
      case "--tap": { const f = val(a); if (f === "-") o.tapStdout = true; else o.tap = f; break; }
      case "--junit": o.junit = val(a); break;
      case "--ktap": { const f = val(a); if (f === "-") o.ktapStdout = true; else o.ktap = f; break; }
      case "--trace-dir": o.traceDir = val(a); break;
      case "--trace-all": o.traceAll = true; break;
      case "--quiet": case "-q": o.progress = false; break;
      case "--help": case "-h": throw new UsageHelp();
      default:
        if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
        o.files!.push(a);
    }
  }
  if (o.workers !== undefined && !(Number.isInteger(o.workers) && o.workers >= 1)) throw new Error("--workers wants a positive integer");
  if (o.memoryMiB !== undefined && !(o.memoryMiB >= 16 && o.memoryMiB <= 890)) throw new Error("--memory wants 16..890 (MiB)");
  return o;
}

class UsageHelp extends Error {}

export const INITRAMFS_USAGE = `usage: v86-balloon initramfs --kernel K [--modules DIR|F.deb] [--kernel-config F] [--initrd BASE] --out F

Builds a complete test initramfs for your kernel: the project's busybox userland, test programs, /init
and /tests (BASE, default public/guest/initramfs.cpio) with your modules appended as a second cpio, loaded
by /init in dependency order. Runs the same pre-flight check on the kernel config as \`test\`.
Then: npx v86-balloon test --kernel K --initrd F
`;

/** \`v86-balloon initramfs ...\`: exit 0 written, 2 usage / pre-flight error. */
export function initramfsMain(argv: string[]): number {
  let out: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" || argv[i] === "-o") out = argv[++i];
    else if (argv[i].startsWith("--out=")) out = argv[i].slice(6);
    else rest.push(argv[i]);
  }
  try {
    const o = parseArgs(rest);
    if (!out) throw new Error("--out F is required");
    if (!o.kernel) throw new Error("--kernel K is required (the kernel the initramfs is for: its config and release are checked)");
    const r = prepareImages(o, planDefaults(o), out);
    for (const n of r.notes) process.stderr.write(`# pre-flight: ${n}\n`);
    process.stderr.write(`# wrote ${out}${r.modules.length ? ` with modules (load order): ${r.modules.join(" ")}` : " (no modules)"}\n`);
    process.stderr.write(`# run: npx v86-balloon test --kernel ${o.kernel} --initrd ${out}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageHelp) {
      process.stdout.write(INITRAMFS_USAGE);
      return 0;
    }
    process.stderr.write(`v86-balloon initramfs: ${(e as Error).message}\n${e instanceof HarnessInputError ? "" : `\n${INITRAMFS_USAGE}`}`);
    return 2;
  }
}

export const MERGE_USAGE = `usage: v86-balloon merge [-o OUT] REPORT...

Joins the TAP 13, KTAP or JUnit reports of \`--shard i/n\` runs (one format per call) into one report, tests
renumbered in the order given. Writes OUT (default stdout). Exit 0 all passed, 1 a test failed or a shard
bailed out, 2 usage error.
`;

export function mergeMain(argv: string[]): number {
  let out: string | undefined;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out") out = argv[++i];
    else if (a === "-h" || a === "--help") {
      process.stdout.write(MERGE_USAGE);
      return 0;
    } else if (a.startsWith("-")) {
      process.stderr.write(`v86-balloon merge: unknown option ${a}\n\n${MERGE_USAGE}`);
      return 2;
    } else files.push(a);
  }
  try {
    if (!files.length) throw new Error("no reports given");
    const texts = files.map((f) => {
      try {
        return readFileSync(f, "utf8");
      } catch {
        throw new Error(`${f}: cannot read it`);
      }
    });
    const { format, text } = mergeReports(texts);
    if (out) writeFileSync(out, text);
    else process.stdout.write(text);
    process.stderr.write(`# merged ${files.length} ${format} report(s)${out ? ` into ${out}` : ""}\n`);
    return reportPassed(format, text) ? 0 : 1;
  } catch (e) {
    process.stderr.write(`v86-balloon merge: ${(e as Error).message}\n\n${MERGE_USAGE}`);
    return 2;
  }
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "snapshot") return (await import("../node/snapshot-cli.js")).snapshotMain(argv.slice(1));
  if (argv[0] === "initramfs") return initramfsMain(argv.slice(1));
  if (argv[0] === "merge") return mergeMain(argv.slice(1));
  if (argv[0] && argv[0] !== "test" && !argv[0].startsWith("-")) {
    process.stderr.write(`unknown command ${argv[0]}\n\n${USAGE}`);
    return 2;
  }
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageHelp) {
      process.stdout.write(USAGE);
      return 0;
    }
    process.stderr.write(`v86-balloon: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const untestable = opts.bisect ? 125 : 2;
  try {
    if (opts.list) {
      process.stdout.write(listTests(opts));
      return 0;
    }
    const r = await runTests(opts);
    if (opts.tapStdout) process.stdout.write(r.tap);
    if (opts.ktapStdout) process.stdout.write(r.ktap);
    for (const c of r.cases) {
      const verdict = c.skipped ? "skip" : c.ok ? "ok  " : "FAIL";
      process.stderr.write(`${verdict} ${c.name}  ${(c.durationMs / 1000).toFixed(1)}s${c.skipped ? `  (${c.skipped})` : ""}\n`);
      for (const n of c.notes ?? []) process.stderr.write(`     note: ${n}\n`);
    }
    const line = `# ${r.platform}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped, ${r.cases.length} tests in ${(r.wallMs / 1000).toFixed(1)}s (${r.bootMs.length} boot(s), ${r.restoreMs.length} snapshot restore(s))`;
    process.stderr.write(line + "\n");
    for (const c of r.cases.filter((x) => !x.ok)) {
      process.stderr.write(`\nFAILED ${c.name} (${c.id})\n${c.failures.map((f) => "  " + f.replace(/\n/g, "\n  ")).join("\n")}\n`);
      if (c.traceFile) process.stderr.write(`  trace: ${c.traceFile}\n`);
    }
    for (const [k, f] of [["tap", opts.tap], ["ktap", opts.ktap], ["junit", opts.junit]] as const) if (f) process.stderr.write(`# ${k}: ${f}\n`);
    if (r.stopped) process.stderr.write(`\nv86-balloon: run stopped: ${r.stopped.split("\n")[0]}\n`);
    if (r.untestable) return untestable;
    return r.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof HarnessInputError) {
      process.stderr.write(`v86-balloon: ${e.message}\n`);
      return e.untestable ? untestable : 2;
    }
    process.stderr.write(`v86-balloon: ${(e as Error).stack ?? e}\n`);
    return 2;
  }
}

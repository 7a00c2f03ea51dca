/**
 * `v86-balloon test [files/dirs/globs] [options]` — see USAGE. Exit status: 0 all passed, 1 failures,
 * 2 usage error.
 */
import { runTests, type RunOptions } from "./runner.js";
import { parseDuration } from "./descriptor.js";
import { FAULTS, FEATURES } from "../vocabulary.js";

const FAULT_USAGE = FAULTS.map((f) => ("value" in f ? `${f.name}=${f.value.syntax}` : f.name)).join(", ");

export const USAGE = `usage: v86-balloon test [files/dirs/globs | guest:/path ...] [options]
       v86-balloon snapshot --out FILE [--memory MIB] [--commands "..."]   (see v86-balloon snapshot --help)

Boots the v86 Linux guest with the v86-balloon device and runs guest-side TAP test scripts.
No files: the project's suite (guest/initramfs/tests/*.sh).

  --kernel F --initrd F    boot your own bzImage / initramfs (default: public/guest/)
  --image-dir D            directory with bios.bin, vgabios.bin, bzImage, initramfs.cpio, manifest.json
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
  --timeout-boot MS        per-boot timeout (default 90000)
  --tap FILE  --junit FILE write reports (TAP 13 / JUnit XML); TAP also goes to stdout with --tap -
  --trace-dir DIR          write a JSON transaction trace for every failing test (--trace-all: every test)
  --quiet                  no progress output
`;

export function parseArgs(argv: string[]): RunOptions & { tapStdout?: boolean } {
  const o: RunOptions & { tapStdout?: boolean } = { files: [], faults: [], progress: true };
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

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "snapshot") return (await import("../node/snapshot-cli.js")).snapshotMain(argv.slice(1));
  if (argv[0] && argv[0] !== "test" && !argv[0].startsWith("-")) {
    process.stderr.write(`unknown command ${argv[0]}\n\n${USAGE}`);
    return 2;
  }
  let opts: ReturnType<typeof parseArgs>;
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
  try {
    const r = await runTests(opts);
    if (opts.tapStdout) process.stdout.write(r.tap);
    const line = `# ${r.platform}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped, ${r.cases.length} tests in ${(r.wallMs / 1000).toFixed(1)}s (${r.bootMs.length} boot(s))`;
    process.stderr.write(line + "\n");
    for (const c of r.cases.filter((x) => !x.ok)) {
      process.stderr.write(`\nFAILED ${c.name} (${c.id})\n${c.failures.map((f) => "  " + f.replace(/\n/g, "\n  ")).join("\n")}\n`);
      if (c.traceFile) process.stderr.write(`  trace: ${c.traceFile}\n`);
    }
    for (const [k, f] of [["tap", opts.tap], ["junit", opts.junit]] as const) if (f) process.stderr.write(`# ${k}: ${f}\n`);
    return r.ok ? 0 : 1;
  } catch (e) {
    process.stderr.write(`v86-balloon: ${(e as Error).stack ?? e}\n`);
    return 2;
  }
}

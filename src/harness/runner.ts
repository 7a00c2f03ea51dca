/**
 * The programmatic API (Node): `runTests(options)` finds the scripts, shards and groups them, runs the
 * groups on a pool of guests (in this process, in child processes, or in pages of one headless Chromium),
 * and writes TAP / JUnit / traces.
 *
 *   import { runTests } from "v86-balloon/src/harness/index.js";
 *   const run = await runTests({ files: ["guest/initramfs/tests"], features: "stats,reporting", workers: 2 });
 *   if (!run.ok) console.log(run.tap);
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { emptyDescriptor, shortName, faultByName, parseDescriptor, parseFeatureSpec, type TestDescriptor } from "./descriptor.js";
import { expandTestArgs, LIB_SCRIPT, SUITE_DIR } from "./files.js";
import { DEFAULT_BOOT_TIMEOUT_MS, DEFAULT_MEMORY_MIB, DEFAULT_TEST_TIMEOUT_MS, groupTests, USER_KERNEL_BOOT_TIMEOUT_MS, type PlanDefaults } from "./plan.js";
import { Progress } from "./progress.js";
import { runGroup, type GroupOptions } from "./session.js";
import { embeddedConfig, kernelRelease, parseKernelConfig, preflight, readConfigFile, type KernelConfig } from "./kernel-image.js";
import { appendModules, GUEST_MODULE_DIR, readModules } from "./modules.js";
import { defaultCacheDir, diskCache, groupCacheKey } from "./snapshot-cache.js";
import { GUEST_DIR } from "../node/vm-node.js";
import { parseShard, shardItems, type ShardSpec } from "./shard.js";
import { writeJUnit } from "./junit.js";
import { writeKtap, writeTap } from "./tap.js";
import type { CaseResult, HarnessEvent, PlannedTest, TestGroup } from "./types.js";

export interface RunOptions {
  /** Test files, directories, globs, or `guest:/path` scripts inside the image. Default: the project suite. */
  files?: string[];
  /** Custom kernel / initramfs (paths; URLs are served for --browser). */
  kernel?: string;
  initrd?: string;
  /** Kernel modules (directory or linux-image .deb) appended to the initramfs and loaded after boot. */
  modules?: string;
  /** The kernel's .config, for the pre-flight check (default: IKCONFIG in the image, the .deb's config-*). */
  kernelConfig?: string;
  /** Console lines that fail a test at once (default: Kernel panic, Oops, BUG:, WARNING:; [] = off). */
  crashPatterns?: string[];
  /** Stop when no driver is bound to virtio device 5 after boot (default true). */
  driverCheck?: boolean;
  /** Fail on known driver quirks seen at boot too (diagnostics CONFORMANCE marks "tolerated"). */
  strict?: boolean;
  /** Device diagnostic kinds that fail no test (e.g. a known driver quirk). */
  allowDiagnostics?: string[];
  /** Directory with the guest images and manifest.json (default public/guest/). */
  imageDir?: string;
  /** Replaces the image's kernel cmdline. */
  cmdline?: string;
  /** Appended to the image's kernel cmdline. */
  cmdlineExtra?: string;
  /** Feature offer for every test (see descriptor.ts): "stats,reporting", "+hint,-poison", "default". */
  features?: string;
  /** Fault modes for every test (BalloonFaults keys or kebab-case). */
  faults?: string[];
  memoryMiB?: number;
  /** Run in headless Chromium instead of Node. */
  browser?: boolean;
  /** Restore a post-boot snapshot before each further test of a boot group (default true). */
  snapshots?: boolean;
  /** Keep post-boot snapshots across runs in this directory (Node; default defaultCacheDir(); false = off). */
  snapshotCache?: string | false;
  /** Guests in parallel (default 1). */
  workers?: number;
  /** Run workers in child processes even when workers == 1 (default: only for workers > 1). */
  isolate?: boolean;
  shard?: string | ShardSpec;
  timeoutTestMs?: number;
  timeoutBootMs?: number;
  /** Write TAP / KTAP / JUnit here. */
  tap?: string;
  ktap?: string;
  junit?: string;
  /** Write a JSON transaction trace per failing test here. */
  traceDir?: string;
  /** Keep traces for passing tests too. */
  traceAll?: boolean;
  /** Only tests whose name or path contains this. */
  filter?: string;
  /** Progress output: true = on stderr (TTY-aware), false = none, or your own listener. */
  progress?: boolean;
  onEvent?: (e: HarnessEvent) => void;
}

export interface RunResult {
  ok: boolean;
  cases: CaseResult[];
  passed: number;
  failed: number;
  skipped: number;
  wallMs: number;
  /** Boot times (ms) of every guest started. */
  bootMs: number[];
  /** Times (ms) of every snapshot restore (a test that started from its group's post-boot state). */
  restoreMs: number[];
  groups: { key: string; tests: number }[];
  tap: string;
  ktap: string;
  junit: string;
  traceFiles: string[];
  platform: "node" | "chromium";
  /** Why the run stopped before running every test (no driver, boot failure, ...). */
  stopped?: string;
  /** The kernel could not be tested (boot failure, panic before the shell, ...): exit 125 under --bisect. */
  untestable: boolean;
  /** Pre-flight notes on the kernel config (things that will make some tests skip). */
  notes: string[];
}

/** The run cannot start: bad input, missing files, a kernel the balloon cannot work with. */
export class HarnessInputError extends Error {
  constructor(
    message: string,
    /** The kernel is at fault (missing image, pre-flight): exit 125 under --bisect. */
    readonly untestable = false,
  ) {
    super(message);
  }
}

function testName(d: TestDescriptor, id: string): string {
  return d.name ?? basename(id).replace(/\.sh$/, "");
}

/** Reads the scripts and their descriptors. */
export function planTests(paths: string[], timeoutTestMs: number, cwd = process.cwd()): PlannedTest[] {
  return paths.map((p) => {
    if (p.startsWith("guest:")) {
      const guestPath = p.slice("guest:".length);
      // In-image scripts of the project's suite: read their header from the source tree.
      let d = emptyDescriptor();
      const local = guestPath.startsWith("/tests/") ? join(SUITE_DIR, guestPath.slice("/tests/".length)) : null;
      try {
        if (local) d = parseDescriptor(readFileSync(local, "utf8"), local);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
      return { id: p, name: testName(d, guestPath), guestPath, descriptor: d, timeoutMs: d.timeoutMs ?? timeoutTestMs };
    }
    const content = readFileSync(p, "utf8");
    const id = relative(cwd, p) || p;
    const d = parseDescriptor(content, id);
    return { id, name: testName(d, id), content, descriptor: d, timeoutMs: d.timeoutMs ?? timeoutTestMs };
  });
}

export function planDefaults(o: RunOptions): PlanDefaults {
  return {
    memoryMiB: o.memoryMiB ?? DEFAULT_MEMORY_MIB,
    cmdline: o.cmdline,
    cmdlineExtra: o.cmdlineExtra,
    kernel: o.kernel ? (o.browser ? o.kernel : resolve(o.kernel)) : undefined,
    initrd: o.initrd ? (o.browser ? o.initrd : resolve(o.initrd)) : undefined,
    imageDir: o.imageDir ? resolve(o.imageDir) + "/" : undefined,
    features: o.features ? parseFeatureSpec(o.features) : undefined,
    faults: (o.faults ?? []).map((f) => faultByName(f)),
    timeoutTestMs: o.timeoutTestMs ?? DEFAULT_TEST_TIMEOUT_MS,
    timeoutBootMs: o.timeoutBootMs ?? (o.kernel ? USER_KERNEL_BOOT_TIMEOUT_MS : DEFAULT_BOOT_TIMEOUT_MS),
  };
}


/** Group options that cross into worker processes and pages: plain data (the cache travels as its directory). */
export type GroupExtras = Omit<Partial<GroupOptions>, "cache" | "launcher" | "emit" | "shouldStop"> & { cacheDir?: string };

/** The options a Node lane runs a group with. */
export function nodeGroupOptions(extra: GroupExtras | undefined): Partial<GroupOptions> {
  const { cacheDir, ...rest } = extra ?? {};
  return { ...rest, ...(cacheDir ? { cache: diskCache(cacheDir) } : {}) };
}

export interface Executor {
  /** Runs the groups; no new group (or test) starts once `shouldStop()` is true. */
  run(groups: TestGroup[], lib: string, emit: (e: HarnessEvent) => void, traceAll: boolean, shouldStop: () => boolean, group?: GroupExtras): Promise<CaseResult[]>;
  close(): Promise<void>;
}

/** Groups one after another (or `workers` at a time) in this process. */
export function inProcessExecutor(workers = 1): Executor {
  return {
    async run(groups, lib, emit, traceAll, shouldStop, extra) {
      const { nodeLauncher } = await import("./node-launcher.js");
      return pool(groups, workers, shouldStop, (g) => runGroup(g, { ...nodeGroupOptions(extra), launcher: nodeLauncher, libScript: lib, emit, traceAll, shouldStop }));
    },
    async close() {},
  };
}

async function pool<T, R>(items: T[], n: number, shouldStop: () => boolean, fn: (t: T) => Promise<R[]>): Promise<R[]> {
  const out: R[][] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(n, items.length)) }, async () => {
    while (next < items.length && !shouldStop()) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(lanes);
  return out.flat();
}

/** The worker beside this module: worker.ts run through tsx in the repository, compiled worker.js in the package. */
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const WORKER = fileURLToPath(new URL(FROM_SOURCE ? "./worker.ts" : "./worker.js", import.meta.url));

function workerExecArgv(): string[] {
  return FROM_SOURCE ? ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href] : [];
}

/** Each lane is a child process (`node --import tsx worker.ts`) that runs groups it is sent. */
export function processExecutor(workers: number): Executor {
  const children: ChildProcess[] = [];
  return {
    async run(groups, lib, emit, traceAll, shouldStop, extra) {
      return pool(
        Array.from({ length: Math.min(workers, groups.length) }, (_, i) => i),
        workers,
        () => false,
        async () => {
          const child = fork(WORKER, [], { execArgv: workerExecArgv(), stdio: ["ignore", "inherit", "inherit", "ipc"] });
          children.push(child);
          const results: CaseResult[] = [];
          for (;;) {
            const g = shouldStop() ? undefined : groups.shift();
            if (!g) break;
            results.push(...(await runInChild(child, g, lib, emit, traceAll, extra)));
          }
          child.send({ type: "exit" });
          return results;
        },
      );
    },
    async close() {
      for (const c of children) if (c.exitCode === null) c.kill();
    },
  };
}

function runInChild(child: ChildProcess, group: TestGroup, lib: string, emit: (e: HarnessEvent) => void, traceAll: boolean, extra?: GroupExtras): Promise<CaseResult[]> {
  return new Promise((resolveP, reject) => {
    const onMsg = (m: { type: string; event?: HarnessEvent; results?: CaseResult[]; error?: string }) => {
      if (m.type === "event" && m.event) emit(m.event);
      else if (m.type === "done") {
        cleanup();
        resolveP(m.results ?? []);
      } else if (m.type === "error") {
        cleanup();
        reject(new Error(`worker: ${m.error}`));
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`worker process exited (${code}) while running ${group.key}`));
    };
    const cleanup = () => {
      child.off("message", onMsg);
      child.off("exit", onExit);
    };
    child.on("message", onMsg);
    child.on("exit", onExit);
    child.send({ type: "run", group, lib, traceAll, extra });
  });
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
}

/** The tests a run selects (files, --filter, --shard), before any guest boots. */
export function selectTests(o: RunOptions): { tests: PlannedTest[]; all: PlannedTest[]; shard: ShardSpec | null } {
  const defaults = planDefaults(o);
  let all = planTests(expandTestArgs(o.files ?? []), defaults.timeoutTestMs);
  const found = all.length;
  if (o.filter) all = all.filter((t) => t.id.includes(o.filter!) || t.name.includes(o.filter!));
  const shard = (typeof o.shard === "string" ? parseShard(o.shard) : o.shard) ?? null;
  const tests = shardItems(all, shard, (t) => t.id);
  if (!tests.length) {
    const what = [o.filter && `--filter ${JSON.stringify(o.filter)}`, shard && `--shard ${shard.index}/${shard.total}`].filter(Boolean).join(" and ");
    throw new HarnessInputError(`no test selected${what ? ` (${what} left none of ${found} test(s))` : ""}: see the list with --list`);
  }
  return { tests, all, shard };
}

/** `--list`: every shard's tests (or just the tests) with the boot group each runs in; no guest is booted. */
export function listTests(o: RunOptions): string {
  const { all } = selectTests({ ...o, shard: undefined });
  const shard = (typeof o.shard === "string" ? parseShard(o.shard) : o.shard) ?? null;
  const defaults = planDefaults(o);
  const total = shard?.total ?? 1;
  const out: string[] = [];
  for (let i = 1; i <= total; i++) {
    const part = shardItems(all, total > 1 ? { index: i, total } : null, (t) => t.id);
    if (total > 1) out.push(`shard ${i}/${total}${shard?.index === i ? " (selected)" : ""}: ${part.length} test(s)`);
    for (const g of groupTests(part, defaults, 1)) {
      out.push(`${total > 1 ? "  " : ""}boot ${g.fresh ? "(fresh) " : ""}${g.key}`);
      for (const t of g.tests) out.push(`${total > 1 ? "    " : "  "}${t.name}  ${t.id}${t.descriptor.skip ? `  # SKIP ${t.descriptor.skip}` : ""}${t.descriptor.requires.length ? `  # requires ${t.descriptor.requires.map((f) => shortName(f)).join(",")}` : ""}`);
    }
  }
  return out.join("\n") + "\n";
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HOTPATH_WASM = join(ROOT, "build/hotpath.wasm");

/** A fresh clone has no build/hotpath.wasm yet: build it (`npm run asbuild`) rather than fail later. */
export function ensureHotPath(log: (s: string) => void = (s) => process.stderr.write(s + "\n")): void {
  if (existsSync(HOTPATH_WASM)) return;
  log("# build/hotpath.wasm is missing: building it (npm run asbuild)");
  const r = spawnSync("npm", ["run", "--silent", "asbuild"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  if (r.status !== 0 || !existsSync(HOTPATH_WASM)) {
    throw new HarnessInputError(`build/hotpath.wasm is missing and \`npm run asbuild\` in ${ROOT} failed (run it there and read its output):\n${(r.stderr || r.stdout || String(r.error ?? "")).trim().slice(-2000)}`);
  }
}

function mustExist(flag: string, path: string | undefined, kind: "file" | "dir" = "file"): void {
  if (!path || /^https?:\/\//.test(path)) return;
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new HarnessInputError(`${flag} ${path}: no such ${kind === "dir" ? "directory" : "file"}`, flag === "--kernel" || flag === "--initrd");
  }
  if (kind === "file" ? !st.isFile() : !st.isDirectory()) throw new HarnessInputError(`${flag} ${path}: not a ${kind === "dir" ? "directory" : "file"}`, flag === "--kernel");
}

/**
 * Before any boot: the user's images exist, `--modules` are read and appended to the initramfs, and the
 * kernel config (if one can be found) allows the balloon to work at all. Returns the pre-flight notes.
 */
export function prepareImages(o: RunOptions, defaults: PlanDefaults, out?: string): { notes: string[]; modules: string[]; tmpDir?: string } {
  mustExist("--kernel", o.kernel);
  mustExist("--initrd", o.initrd);
  mustExist("--image-dir", o.imageDir, "dir");
  mustExist("--kernel-config", o.kernelConfig);
  const local = (p: string | undefined) => (p && !/^https?:\/\//.test(p) ? p : undefined);
  const kernelPath = local(o.kernel);
  const mods = o.modules ? readModulesOrStop(o.modules) : null;
  let config: KernelConfig | null = null;
  let source = "";
  if (o.kernelConfig) [config, source] = [readConfigFile(o.kernelConfig), o.kernelConfig];
  else if (mods?.config) [config, source] = [parseKernelConfig(mods.config), `the config in ${o.modules}`];
  else if (kernelPath) {
    const text = embeddedConfig(readFileSync(kernelPath));
    if (text) [config, source] = [parseKernelConfig(text), `the config embedded in ${kernelPath} (IKCONFIG)`];
  }
  const notes: string[] = [];
  if (config) {
    const provided = mods && o.modules ? { arg: o.modules, names: new Set(mods.modules.map((m) => m.name)) } : modulesInInitrd(local(o.initrd));
    const pf = preflight({ config, source, modules: provided });
    if (pf.errors.length) throw new HarnessInputError(`pre-flight (${source}): the balloon cannot work with this kernel:\n  ${pf.errors.join("\n  ")}`, true);
    notes.push(...pf.notes);
  } else if (kernelPath && !mods) {
    notes.push(`no kernel config found (no IKCONFIG in ${kernelPath}; --kernel-config F gives one): pre-flight checks skipped`);
  }
  if (mods && o.modules) {
    const release = kernelPath ? kernelRelease(readFileSync(kernelPath)) : null;
    const other = release ? mods.modules.filter((m) => m.vermagic && m.vermagic.split(" ")[0] !== release) : [];
    if (other.length) throw new HarnessInputError(`--modules ${o.modules}: ${other.map((m) => m.name).join(", ")} built for ${other[0].vermagic!.split(" ")[0]}, the kernel is ${release}`, true);
    const base = readFileSync(local(o.initrd) ?? join(defaults.imageDir ?? join(ROOT, "public/guest/"), "initramfs.cpio"));
    const tmpDir = out ? undefined : mkdtempSync(join(tmpdir(), "v86-balloon-initrd-"));
    const file = out ?? join(tmpDir!, "initramfs+modules.cpio");
    writeFileSync(file, appendModules(base, mods.modules));
    defaults.initrd = file;
    defaults.modules = o.modules;
    return { notes, modules: mods.modules.map((m) => m.name), tmpDir };
  } else if (out) {
    writeFileSync(out, readFileSync(local(o.initrd) ?? join(defaults.imageDir ?? join(ROOT, "public/guest/"), "initramfs.cpio")));
  }
  return { notes, modules: [] };
}

/** Modules a `v86-balloon initramfs --modules` image carries (its appended cpio), for pre-flight. */
function modulesInInitrd(path: string | undefined): { arg: string; names: Set<string> } | null {
  if (!path) return null;
  const text = readFileSync(path).toString("latin1");
  const names = new Set([...text.matchAll(new RegExp(`${GUEST_MODULE_DIR.slice(1)}/([\\w-]+)\\.ko\\0`, "g"))].map((m) => m[1]));
  return names.size ? { arg: `${path} (its appended modules)`, names } : null;
}

function readModulesOrStop(arg: string) {
  try {
    return readModules(arg);
  } catch (e) {
    throw new HarnessInputError((e as Error).message, true);
  }
}

export async function runTests(o: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  const defaults = planDefaults(o);
  const { tests } = selectTests(o);
  const { notes, tmpDir } = prepareImages(o, defaults);
  ensureHotPath();
  const workers = Math.max(1, o.workers ?? 1);
  const groups = groupTests(tests, defaults, workers);
  const lib = readFileSync(LIB_SCRIPT, "utf8");
  const cacheDir = !o.browser && o.snapshots !== false && o.snapshotCache !== false ? (o.snapshotCache || defaultCacheDir()) : undefined;
  if (cacheDir) {
    const imageDir = defaults.imageDir ?? GUEST_DIR;
    for (const g of groups) g.cacheKey = groupCacheKey(g, { imageDir, lib, driverCheck: o.driverCheck !== false });
  }

  const progress = o.progress ? new Progress(tests.length) : null;
  for (const n of notes) progress?.note(`pre-flight: ${n}`);
  const bootMs: number[] = [];
  const restoreMs: number[] = [];
  let stopped = false;
  const emit = (e: HarnessEvent) => {
    if (e.type === "boot-end" && e.ok) bootMs.push(e.ms);
    if (e.type === "restore-end") restoreMs.push(e.ms);
    if (e.type === "test-end" && e.result.stopRun) stopped = true;
    progress?.event(e);
    o.onEvent?.(e);
  };

  let executor: Executor;
  if (o.browser) {
    const { browserExecutor } = await import("./browser-runner.js");
    executor = await browserExecutor({ workers, kernel: defaults.kernel, initrd: defaults.initrd });
  } else if (workers > 1 || o.isolate) executor = processExecutor(workers);
  else executor = inProcessExecutor(1);

  let cases: CaseResult[];
  try {
    const extra: GroupExtras = { ...(o.crashPatterns ? { crashPatterns: o.crashPatterns } : {}), ...(o.driverCheck === false ? { driverCheck: false } : {}), ...(o.allowDiagnostics ? { allowDiagnostics: o.allowDiagnostics } : {}), ...(o.snapshots === false ? { snapshots: false } : {}), ...(o.strict ? { strict: true } : {}), ...(cacheDir ? { cacheDir } : {}) };
    cases = await executor.run([...groups], lib, emit, !!o.traceAll, () => stopped, extra);
  } finally {
    await executor.close();
    progress?.finish();
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }
  // Report in a stable order (the order of the test list), whatever order the workers finished in.
  const order = new Map(tests.map((t, i) => [t.id, i]));
  cases.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));

  const traceFiles: string[] = [];
  if (o.traceDir) {
    mkdirSync(o.traceDir, { recursive: true });
    for (const c of cases) {
      if (!c.trace) continue;
      const f = join(o.traceDir, `${safeName(c.id)}.trace.json`);
      writeFileSync(f, JSON.stringify(c.trace, null, 1) + "\n");
      c.traceFile = f;
      traceFiles.push(f);
    }
  }
  const tap = writeTap(cases);
  const ktap = writeKtap(cases);
  const junit = writeJUnit(cases);
  for (const [path, text] of [
    [o.tap, tap],
    [o.ktap, ktap],
    [o.junit, junit],
  ] as const) {
    if (!path) continue;
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, text);
  }
  const failed = cases.filter((c) => !c.ok).length;
  const stop = cases.find((c) => c.stopRun);
  return {
    ok: failed === 0 && cases.length === tests.length,
    stopped: stop?.stopRun,
    untestable: !!stop?.untestable,
    notes,
    cases,
    passed: cases.filter((c) => c.ok && !c.skipped).length,
    failed,
    skipped: cases.filter((c) => c.skipped).length,
    wallMs: Date.now() - t0,
    bootMs,
    restoreMs,
    groups: groups.map((g) => ({ key: g.key, tests: g.tests.length })),
    tap,
    ktap,
    junit,
    traceFiles,
    platform: o.browser ? "chromium" : "node",
  };
}

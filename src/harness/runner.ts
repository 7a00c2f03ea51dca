/**
 * The programmatic API (Node): `runTests(options)` finds the scripts, shards and groups them, runs the
 * groups on a pool of guests (in this process, in child processes, or in pages of one headless Chromium),
 * and writes TAP / JUnit / traces.
 *
 *   import { runTests } from "v86-balloon/src/harness/index.js";
 *   const run = await runTests({ files: ["guest/initramfs/tests"], features: "stats,reporting", workers: 2 });
 *   if (!run.ok) console.log(run.tap);
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { emptyDescriptor, faultByName, parseDescriptor, parseFeatureSpec, type TestDescriptor } from "./descriptor.js";
import { expandTestArgs, LIB_SCRIPT, SUITE_DIR } from "./files.js";
import { DEFAULT_BOOT_TIMEOUT_MS, DEFAULT_MEMORY_MIB, DEFAULT_TEST_TIMEOUT_MS, groupTests, type PlanDefaults } from "./plan.js";
import { Progress } from "./progress.js";
import { runGroup } from "./session.js";
import { parseShard, shardItems, type ShardSpec } from "./shard.js";
import { writeJUnit } from "./junit.js";
import { writeTap } from "./tap.js";
import type { CaseResult, HarnessEvent, PlannedTest, TestGroup } from "./types.js";

export interface RunOptions {
  /** Test files, directories, globs, or `guest:/path` scripts inside the image. Default: the project suite. */
  files?: string[];
  /** Custom kernel / initramfs (paths; URLs are served for --browser). */
  kernel?: string;
  initrd?: string;
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
  /** Guests in parallel (default 1). */
  workers?: number;
  /** Run workers in child processes even when workers == 1 (default: only for workers > 1). */
  isolate?: boolean;
  shard?: string | ShardSpec;
  timeoutTestMs?: number;
  timeoutBootMs?: number;
  /** Write TAP / JUnit here. */
  tap?: string;
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
  groups: { key: string; tests: number }[];
  tap: string;
  junit: string;
  traceFiles: string[];
  platform: "node" | "chromium";
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
    timeoutBootMs: o.timeoutBootMs ?? DEFAULT_BOOT_TIMEOUT_MS,
  };
}

export interface Executor {
  run(groups: TestGroup[], lib: string, emit: (e: HarnessEvent) => void, traceAll: boolean): Promise<CaseResult[]>;
  close(): Promise<void>;
}

/** Groups one after another (or `workers` at a time) in this process. */
export function inProcessExecutor(workers = 1): Executor {
  return {
    async run(groups, lib, emit, traceAll) {
      const { nodeLauncher } = await import("./node-launcher.js");
      return pool(groups, workers, (g) => runGroup(g, { launcher: nodeLauncher, libScript: lib, emit, traceAll }));
    },
    async close() {},
  };
}

async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R[]>): Promise<R[]> {
  const out: R[][] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(n, items.length)) }, async () => {
    while (next < items.length) {
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
    async run(groups, lib, emit, traceAll) {
      return pool(
        Array.from({ length: Math.min(workers, groups.length) }, (_, i) => i),
        workers,
        async () => {
          const child = fork(WORKER, [], { execArgv: workerExecArgv(), stdio: ["ignore", "inherit", "inherit", "ipc"] });
          children.push(child);
          const results: CaseResult[] = [];
          for (;;) {
            const g = groups.shift();
            if (!g) break;
            results.push(...(await runInChild(child, g, lib, emit, traceAll)));
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

function runInChild(child: ChildProcess, group: TestGroup, lib: string, emit: (e: HarnessEvent) => void, traceAll: boolean): Promise<CaseResult[]> {
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
    child.send({ type: "run", group, lib, traceAll });
  });
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
}

export async function runTests(o: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  const defaults = planDefaults(o);
  let tests = planTests(expandTestArgs(o.files ?? []), defaults.timeoutTestMs);
  if (o.filter) tests = tests.filter((t) => t.id.includes(o.filter!) || t.name.includes(o.filter!));
  const shard = typeof o.shard === "string" ? parseShard(o.shard) : o.shard;
  tests = shardItems(tests, shard, (t) => t.id);
  const workers = Math.max(1, o.workers ?? 1);
  const groups = groupTests(tests, defaults, workers);
  const lib = readFileSync(LIB_SCRIPT, "utf8");

  const progress = o.progress ? new Progress(tests.length) : null;
  const bootMs: number[] = [];
  const emit = (e: HarnessEvent) => {
    if (e.type === "boot-end" && e.ok) bootMs.push(e.ms);
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
    cases = await executor.run([...groups], lib, emit, !!o.traceAll);
  } finally {
    await executor.close();
    progress?.finish();
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
  const junit = writeJUnit(cases);
  for (const [path, text] of [
    [o.tap, tap],
    [o.junit, junit],
  ] as const) {
    if (!path) continue;
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, text);
  }
  const failed = cases.filter((c) => !c.ok).length;
  return {
    ok: failed === 0 && cases.length === tests.length,
    cases,
    passed: cases.filter((c) => c.ok && !c.skipped).length,
    failed,
    skipped: cases.filter((c) => c.skipped).length,
    wallMs: Date.now() - t0,
    bootMs,
    groups: groups.map((g) => ({ key: g.key, tests: g.tests.length })),
    tap,
    junit,
    traceFiles,
    platform: o.browser ? "chromium" : "node",
  };
}

/**
 * Memory of `<v86-balloon-vm>` add/remove cycles, for the embed test and the `embed` bench group.
 *
 * What a tab really holds in RAM: Chromium's renderer processes
 * started by this Node process (the browser playwright launched is our child; launchChromium runs one
 * Chromium at a time), read from Linux's /proc/PID/smaps_rollup.
 *
 * `pssMiB` is the proportional set size: every page the renderers have resident — JS heap, the guest's
 * RAM in v86's wasm memory, ArrayBuffers (the cached images), compiled code, DOM, xterm's canvases — with
 * pages shared between processes (libraries) split between them. CDP's Performance.getMetrics
 * (JSHeapUsedSize) sees only the JS heap, not a wasm memory: a leaked guest would not show there.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { BrowserContext, CDPSession, Page } from "playwright-core";

export interface RendererMemory {
  /** Proportional set size of the renderer processes, MiB. */
  pssMiB: number;
  /** Resident set size (shared pages counted in full), MiB. */
  rssMiB: number;
  /** The renderer processes measured. */
  pids: number[];
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return ""; // the process ended meanwhile
  }
}

/** Renderer processes descending from `root` (default: this process). */
export function rendererPids(root = process.pid): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    // Field 4 of stat, after the command name in parentheses (which may itself hold spaces).
    const stat = readOr(`/proc/${d}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid) parent.set(Number(d), ppid);
  }
  const descends = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p && hops < 64; p = parent.get(p), hops++) if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter((pid) => descends(pid) && readOr(`/proc/${pid}/cmdline`).includes("--type=renderer"));
}

export function rendererMemory(root = process.pid): RendererMemory {
  const pids = rendererPids(root);
  let pss = 0;
  let rss = 0;
  for (const pid of pids) {
    const rollup = readOr(`/proc/${pid}/smaps_rollup`);
    pss += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
    rss += Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
  }
  return { pssMiB: pss / 1024, rssMiB: rss / 1024, pids };
}

export interface CycleLevels {
  /** Renderer PSS after each cycle's removal, once its emulator was collected (MiB). */
  pssMiB: number[];
  /** CDP Performance.getMetrics JSHeapUsedSize at the same moments (MiB). */
  jsHeapMiB: number[];
  /** Renderer PSS while each cycle's VM was up (after `command`), MiB. */
  livePssMiB: number[];
}

type CycleEl = HTMLElement & { ready: Promise<unknown>; vm: { run(c: string): Promise<string>; emulator: object } | null };

/** Appends a `<v86-balloon-vm autostart>` with `attrs` to `#slot`, waits for its shell and runs `command` in it. */
export async function addElement(page: Page, attrs: Record<string, string>, command: string): Promise<void> {
  await page.evaluate(async ([attrs, command]) => {
    const el = document.createElement("v86-balloon-vm") as CycleEl;
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
    el.setAttribute("autostart", "");
    el.style.height = "100px";
    document.getElementById("slot")!.append(el);
    await el.ready;
    await el.vm!.run(command);
  }, [attrs, command] as const);
}

/**
 * `cycles` times: append a `<v86-balloon-vm autostart>` with `attrs` (e.g. `{ state: "guest.state" }`) to
 * `#slot`, wait for its shell, run `command` in it, remove it, then force garbage collections until its
 * emulator is unreachable (a WeakRef), and read the renderer's memory. Throws when an emulator stays
 * reachable for `collectMs`.
 */
export async function embedCycles(context: BrowserContext, page: Page, opts: { cycles: number; attrs: Record<string, string>; command: string; collectMs?: number }): Promise<CycleLevels> {
  const cdp: CDPSession = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const levels: CycleLevels = { pssMiB: [], jsHeapMiB: [], livePssMiB: [] };
  try {
    for (let i = 0; i < opts.cycles; i++) {
      await addElement(page, { ...opts.attrs, id: "cycle" }, opts.command);
      levels.livePssMiB.push(rendererMemory().pssMiB);
      await page.evaluate(() => {
        const el = document.getElementById("cycle") as CycleEl;
        (window as unknown as { emulatorRef: WeakRef<object> }).emulatorRef = new WeakRef(el.vm!.emulator);
        el.remove();
      });
      // The removal's teardown is asynchronous (v86's destroy): collect until the emulator is gone.
      const end = Date.now() + (opts.collectMs ?? 20_000);
      for (;;) {
        await cdp.send("HeapProfiler.collectGarbage");
        if (!(await page.evaluate(() => (window as unknown as { emulatorRef: WeakRef<object> }).emulatorRef.deref()))) break;
        if (Date.now() > end) throw new Error(`cycle ${i + 1}: the removed element's emulator is still reachable after ${opts.collectMs ?? 20_000} ms of garbage collections`);
      }
      const { metrics } = await cdp.send("Performance.getMetrics");
      levels.jsHeapMiB.push(metrics.find((m) => m.name === "JSHeapUsedSize")!.value / 1048576);
      levels.pssMiB.push(rendererMemory().pssMiB);
    }
  } finally {
    await cdp.detach().catch(() => {});
  }
  return levels;
}

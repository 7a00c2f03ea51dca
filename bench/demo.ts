/**
 * Demo page in headless Chromium (the built site, dist/):
 *   demo.prompt_ms        page opened -> interactive prompt (median of 3 fresh loads, no HTTP cache)
 *   demo.page_bytes       bytes transferred for one load (bodies + headers), and by kind:
 *   demo.page_bytes_js / _wasm / _images (guest kernel, initramfs, BIOS, manifest) / _other
 *   demo.chart_fps        chart redraws per second while the balloon inflates (capped at 5 by design)
 *   demo.raf_fps          animation frames per second over the same window (page responsiveness)
 *   demo.inflate_mib_s    balloon growth seen by the page during that window
 *   demo.node_prompt_ms   the same guest booted in Node in the same run (median of 3): the page's goal
 *                         is demo.prompt_ms <= 2 x demo.node_prompt_ms
 *   demo.first_inflate_64m_ms / demo.third_inflate_64m_ms  target 0 -> 64 MiB until actual = 64 MiB, the
 *                         first after boot (the one a visitor sees) and the third, in the same page
 *   demo.axe_serious / demo.axe_critical  axe-core violations (rules, summed) before boot, after boot and
 *                         after an inflate (goal 0)
 */
import type { Page } from "playwright-core";
import { axeFindings, waitReady } from "../devkit/demo-page.js";
import { DIST, launchChromium, requireBuiltSite, serveStatic } from "../devkit/browser.js";
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import { median } from "./support.js";

const MEMORY_MIB = 128;
const RUNS = 3;


function kindOf(url: string): "js" | "wasm" | "images" | "other" {
  const path = new URL(url).pathname;
  if (path.includes("/guest/")) return "images";
  if (path.endsWith(".wasm")) return "wasm";
  if (path.endsWith(".js") || path.endsWith(".mjs")) return "js";
  return "other";
}

/**
 * Bytes transferred (bodies + headers) by kind, from the page's own Resource Timing: Playwright's
 * requestfinished events arrive late on a loaded machine and undercounted whole images.
 */
async function bytesOf(page: Page): Promise<Record<string, number>> {
  const entries = await page.evaluate(() =>
    [location.href, ...performance.getEntriesByType("resource").map((e) => e.name)].map((name, i) => {
      const e = i === 0 ? (performance.getEntriesByType("navigation")[0] as PerformanceResourceTiming) : (performance.getEntriesByType("resource")[i - 1] as PerformanceResourceTiming);
      return { name, bytes: e.transferSize };
    }),
  );
  const out = { js: 0, wasm: 0, images: 0, other: 0 };
  for (const e of entries) if (e.name.startsWith("http")) out[kindOf(e.name)] += e.bytes;
  return out;
}

async function measureInflate(page: Page): Promise<{ chartFps: number; rafFps: number; mibPerS: number }> {
  return page.evaluate(async (memoryMiB) => {
    const d = window.__demo;
    const b = d.balloon!;
    const target = Math.round(memoryMiB * 0.6);
    const r0 = d.charts.redraws;
    const a0 = b.actual;
    let frames = 0;
    let on = true;
    const count = () => {
      frames++;
      if (on) requestAnimationFrame(count);
    };
    requestAnimationFrame(count);
    const t0 = performance.now();
    d.controls!.setTargetMiB(target);
    // Window: until the balloon settles, at least 3 s (so the charts have something to draw), at most 60 s.
    while (performance.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 100));
      if (b.actual === b.target && performance.now() - t0 > 3000) break;
    }
    on = false;
    const s = (performance.now() - t0) / 1000;
    const mib = ((b.actual - a0) * 4096) / 1048576;
    d.controls!.setTargetMiB(0);
    return { chartFps: (d.charts.redraws - r0) / s, rafFps: frames / s, mibPerS: mib / s };
  }, MEMORY_MIB);
}

/** Inflate 0 -> 64 MiB three times in the page; ms until actual reached it, first and third. */
async function inflates64(page: Page): Promise<number[]> {
  return page.evaluate(async () => {
    const b = window.__demo.balloon!;
    const until = async (pages: number) => {
      while (b.actual !== pages) await new Promise((r) => setTimeout(r, 10));
    };
    const out: number[] = [];
    for (let i = 0; i < 3; i++) {
      window.__demo.controls!.setTargetMiB(0);
      await until(0);
      const t0 = performance.now();
      window.__demo.controls!.setTargetMiB(64);
      await until(64 * 256);
      out.push(performance.now() - t0);
    }
    window.__demo.controls!.setTargetMiB(0);
    await until(0);
    return out;
  });
}

async function nodePromptMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = Date.now();
    const { vm } = await startNodeBalloonVM({ memoryMiB: MEMORY_MIB });
    times.push(Date.now() - t0);
    await vm.destroy();
  }
  return median(times);
}

export async function run(): Promise<Record<string, number>> {
  requireBuiltSite();
  const server = await serveStatic(DIST);
  const browser = await launchChromium();
  try {
    const url = `${server.url}index.html?autoboot&memory=${MEMORY_MIB}`;
    const times: number[] = [];
    let bytes: Record<string, number> = {};
    let inflate = { chartFps: 0, rafFps: 0, mibPerS: 0 };
    let inflate64: number[] = [];
    const axe = { serious: 0, critical: 0 };
    const addAxe = (f: { serious: string[]; critical: string[] }) => {
      axe.serious += f.serious.length;
      axe.critical += f.critical.length;
    };
    for (let i = 0; i < RUNS; i++) {
      const page = await browser.context.newPage();
      const t0 = Date.now();
      await page.goto(url);
      await waitReady(page);
      times.push(Date.now() - t0);
      if (i === 0) {
        bytes = await bytesOf(page);
        inflate64 = await inflates64(page);
        inflate = await measureInflate(page);
        addAxe(await axeFindings(page));
        await page.evaluate(() => window.__demo.controls!.setTargetMiB(32));
        await page.waitForFunction(() => window.__demo.balloon!.actual === 32 * 256, undefined, { timeout: 120_000 });
        addAxe(await axeFindings(page));
      }
      await page.close();
    }
    const before = await browser.context.newPage();
    await before.goto(`${server.url}index.html`);
    await before.waitForFunction(() => window.__demo !== undefined);
    addAxe(await axeFindings(before));
    await before.close();
    const nodeMs = await nodePromptMs();
    const total = Object.values(bytes).reduce((a, b) => a + b, 0);
    return {
      "demo.prompt_ms": Math.round(median(times)),
      "demo.node_prompt_ms": Math.round(nodeMs),
      "demo.first_inflate_64m_ms": Math.round(inflate64[0] ?? 0),
      "demo.third_inflate_64m_ms": Math.round(inflate64[2] ?? 0),
      "demo.axe_serious": axe.serious,
      "demo.axe_critical": axe.critical,
      "demo.page_bytes": total,
      "demo.page_bytes_js": bytes.js,
      "demo.page_bytes_wasm": bytes.wasm,
      "demo.page_bytes_images": bytes.images,
      "demo.page_bytes_other": bytes.other,
      "demo.chart_fps": Number(inflate.chartFps.toFixed(2)),
      "demo.raf_fps": Number(inflate.rafFps.toFixed(1)),
      "demo.inflate_mib_s": Number(inflate.mibPerS.toFixed(1)),
    };
  } finally {
    await browser.close();
    await server.close();
  }
}

// `npx tsx bench/demo.ts` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((r) => console.log(JSON.stringify(r, null, 2)));
}

/**
 * The embeddable element on a docs page (library build, headless Chromium) and the state files it restores:
 *   embed.state_prompt_ms          page opened in a new tab -> the shell answers `echo ok`, restored from a state
 *                                  file (median of 3, interleaved with the boot runs). Every run is a first visit:
 *                                  serveStatic answers no-store, so each file is downloaded and v86.wasm compiled again
 *   embed.boot_prompt_ms           the same with a full boot, in the same run
 *   embed.state_gzip_bytes         `snapshot --memory 128 --commands "true"` file size
 *   embed.state_content_mib / embed.state_uncompacted_content_mib   guest RAM holding data (non-zero pages)
 *                                  after / before compaction: what is left is what the guest uses
 *   embed.state_uncompacted_gzip_bytes  the same state saved without the balloon's compaction
 *   embed.state_compaction_ratio   compacted / uncompacted gzip size (same guest, same run)
 *   embed.state_junk_compaction_ratio  the same after the guest wrote and deleted 48 MiB of random data (a
 *                                  build's temporary files): what the balloon is for; a fresh guest has little to remove
 *   embed.page_bytes_1_element / _3_elements / _ratio   bytes transferred for a page with 1 and 3 restored elements
 *   embed.memory_growth_5_cycles_mib   tab memory after the 5th add/remove cycle of a restored element minus after
 *                                  the 1st: the renderer processes' PSS (/proc/PID/smaps_rollup: JS heap, the guest
 *                                  RAM in v86's wasm memory, ArrayBuffers, code, DOM), each level read once the
 *                                  removed emulator was garbage-collected (devkit/embed-memory.ts)
 *   embed.memory_growth_5_cycles_js_heap_mib  the same cycles by CDP Performance.getMetrics JSHeapUsedSize (the
 *                                  JS heap only: a guest's wasm memory is not in it)
 *   embed.second_vm_rss_mib        what a second restored 128 MiB VM adds to the renderers' PSS (the same measure;
 *                                  only pages the guest touched are resident, so it can stay below 128)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page, Request } from "playwright-core";
import { build } from "vite";
import { makeSnapshot } from "../src/node/snapshot.js";
import { launchChromium, ROOT, serveStatic, type Browser } from "../devkit/browser.js";
import { addElement, embedCycles, rendererMemory } from "../devkit/embed-memory.js";
import { median } from "./support.js";

const RUNS = 3;

const html = (body: string) =>
  `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>embed bench</title>` +
  `<script type="module" src="./dist/lib/v86-balloon.js"></script>\n${body}`;

type VMEl = HTMLElement & { ready: Promise<unknown>; vm: { run(c: string): Promise<string> } | null };

/**
 * Runs `fn` in a new tab, as a visitor opens a page. (Navigating one tab away from a booted guest leaves
 * that guest's hundreds of MiB to be collected during the next page's load: +0.2-0.5 s seen under load.)
 */
async function inNewTab<T>(browser: Browser, fn: (page: Page) => Promise<T>): Promise<T> {
  const page = await browser.context.newPage();
  try {
    return await fn(page);
  } finally {
    await page.close();
  }
}

/** Loads `url` and returns ms until every element answers `echo ok`. */
async function promptMs(page: Page, url: string): Promise<number> {
  const t0 = performance.now();
  await page.goto(url);
  await page.waitForFunction(() => customElements.get("v86-balloon-vm"), null, { timeout: 60_000 });
  await page.evaluate(() =>
    Promise.all(
      [...document.querySelectorAll("v86-balloon-vm")].map(async (e) => {
        await (e as VMEl).ready;
        await (e as VMEl).vm!.run("echo ok");
      }),
    ),
  );
  return performance.now() - t0;
}

async function pageBytes(page: Page, url: string): Promise<number> {
  const requests: Request[] = [];
  const on = (r: Request) => requests.push(r);
  page.on("request", on);
  await promptMs(page, url);
  page.off("request", on);
  let bytes = 0;
  for (const r of requests) {
    if (!r.url().startsWith("http")) continue;
    const s = await r.sizes();
    bytes += s.responseBodySize + s.responseHeadersSize;
  }
  return bytes;
}

export async function run(): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), "v86-balloon-embed-bench-"));
  try {
    await build({ configFile: join(ROOT, "vite.lib.config.ts"), logLevel: "error", build: { outDir: join(dir, "dist/lib"), emptyOutDir: true } });
    const plain = await makeSnapshot({ memoryMiB: 128, commands: "true" });
    const junk = await makeSnapshot({ memoryMiB: 128, commands: "dd if=/dev/urandom of=/tmp/junk bs=1M count=48 2>/dev/null; rm /tmp/junk" });
    writeFileSync(join(dir, "guest.state"), plain.file);
    const pages = {
      "boot.html": `<v86-balloon-vm memory="128" autostart></v86-balloon-vm>`,
      "state.html": `<v86-balloon-vm state="guest.state" autostart></v86-balloon-vm>`,
      "three.html": [1, 2, 3].map(() => `<v86-balloon-vm style="height:150px" state="guest.state" autostart></v86-balloon-vm>`).join("\n"),
      "cycles.html": `<div id="slot"></div>`,
    };
    for (const [name, body] of Object.entries(pages)) writeFileSync(join(dir, name), html(body));
    const server = await serveStatic(dir, ROOT);
    const browser = await launchChromium({ viewport: { width: 1000, height: 700 } });
    try {
      const page = browser.page;
      const boot: number[] = [];
      const state: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        state.push(await inNewTab(browser, (p) => promptMs(p, `${server.url}state.html`)));
        boot.push(await inNewTab(browser, (p) => promptMs(p, `${server.url}boot.html`)));
      }
      const one = await inNewTab(browser, (p) => pageBytes(p, `${server.url}state.html`));
      const three = await inNewTab(browser, (p) => pageBytes(p, `${server.url}three.html`));

      await page.goto(`${server.url}cycles.html`);
      const cycles = await embedCycles(browser.context, page, { cycles: 5, attrs: { state: "guest.state" }, command: "echo ok" });

      await page.goto(`${server.url}cycles.html`);
      await addElement(page, { state: "guest.state" }, "echo ok");
      const oneVM = rendererMemory().pssMiB;
      await addElement(page, { state: "guest.state" }, "echo ok");
      const twoVMs = rendererMemory().pssMiB;
      return {
        "embed.state_prompt_ms": Math.round(median(state)),
        "embed.boot_prompt_ms": Math.round(median(boot)),
        "embed.state_gzip_bytes": plain.file.byteLength,
        "embed.state_uncompacted_gzip_bytes": plain.uncompactedFileBytes,
        "embed.state_content_mib": plain.contentPages.after / 256,
        "embed.state_uncompacted_content_mib": plain.contentPages.before / 256,
        "embed.state_compaction_ratio": plain.file.byteLength / plain.uncompactedFileBytes,
        "embed.state_junk_compaction_ratio": junk.file.byteLength / junk.uncompactedFileBytes,
        "embed.page_bytes_1_element": one,
        "embed.page_bytes_3_elements": three,
        "embed.page_bytes_ratio": three / one,
        "embed.memory_growth_5_cycles_mib": cycles.pssMiB[4] - cycles.pssMiB[0],
        "embed.memory_growth_5_cycles_js_heap_mib": cycles.jsHeapMiB[4] - cycles.jsHeapMiB[0],
        "embed.second_vm_rss_mib": twoVMs - oneVM,
      };
    } finally {
      await browser.close();
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

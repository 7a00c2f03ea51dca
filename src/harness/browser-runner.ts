/**
 * `--browser`: the same groups run in pages of one headless Debian Chromium (playwright-core), served by a
 * Vite dev server on 127.0.0.1 (the harness page `src/harness/browser/index.html`, the guest images from
 * `public/guest/`, custom images through Vite's `/@fs/` paths). One page per worker.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../node/chromium.js";
import type { Executor } from "./runner.js";
import type { CaseResult, HarnessEvent, TestGroup } from "./types.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Local image paths become URLs the dev server answers. */
function toUrl(p: string | undefined): string | undefined {
  if (!p) return undefined;
  if (/^https?:\/\//.test(p)) return p;
  return `/@fs${resolve(p)}`;
}

export async function browserExecutor(opts: { workers: number; kernel?: string; initrd?: string }): Promise<Executor> {
  if (!existsSync(resolve(ROOT, "src/harness/browser/index.html"))) {
    throw new Error(`--browser serves the harness page from a checkout of the repository (${ROOT} has no src/): run it from a clone (npm ci && npm run harness -- --browser), or drop --browser to run in Node`);
  }
  const { createServer } = await import("vite");
  const server = await createServer({
    configFile: false,
    root: ROOT,
    logLevel: "error",
    clearScreen: false,
    server: { host: "127.0.0.1", port: 0, strictPort: false, fs: { strict: false, allow: ["/"] }, hmr: false },
    optimizeDeps: { entries: ["src/harness/browser/index.html"] },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === "string") throw new Error("vite dev server has no port");
  const base = `http://127.0.0.1:${addr.port}/`;
  const browser = await launchChromium();
  const { context } = browser;
  const consoleTail: string[] = [];

  async function newPage(emit: (e: HarnessEvent) => void) {
    const page = await context.newPage();
    page.on("console", (m) => {
      consoleTail.push(`[${m.type()}] ${m.text()}`);
      if (consoleTail.length > 50) consoleTail.shift();
    });
    page.on("pageerror", (e) => consoleTail.push(`[pageerror] ${e.message}`));
    await page.exposeFunction("__harnessEvent", (e: HarnessEvent) => emit(e));
    await page.goto(base + "src/harness/browser/index.html");
    try {
      await page.waitForFunction(() => (window as unknown as { __harness?: { ready: boolean } }).__harness?.ready === true, null, { timeout: 120_000 });
    } catch (e) {
      throw new Error(`the harness page did not load (${(e as Error).message}); console:\n${consoleTail.join("\n")}`);
    }
    return page;
  }

  return {
    async run(groups, lib, emit, traceAll) {
      const lanes = Math.max(1, Math.min(opts.workers, groups.length));
      const queue: TestGroup[] = groups.map((g) => ({
        ...g,
        boot: { ...g.boot, kernel: toUrl(opts.kernel ?? g.boot.kernel), initrd: toUrl(opts.initrd ?? g.boot.initrd) },
      }));
      const all = await Promise.all(
        Array.from({ length: lanes }, async () => {
          const page = await newPage(emit);
          const out: CaseResult[] = [];
          for (;;) {
            const g = queue.shift();
            if (!g) break;
            const r = await page.evaluate(
              ([group, libText, all]) =>
                (window as unknown as { __harness: { runGroup(g: unknown, l: string, t: boolean): Promise<CaseResult[]> } }).__harness.runGroup(group, libText, all),
              [g, lib, traceAll] as const,
            );
            out.push(...r);
          }
          await page.close();
          return out;
        }),
      );
      return all.flat();
    },
    async close() {
      await browser.close().catch(() => {});
      await server.close();
    },
  };
}

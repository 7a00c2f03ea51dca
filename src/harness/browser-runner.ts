/**
 * `--browser`: the same groups run in pages of one headless Debian Chromium (playwright-core), one page per
 * worker, served on 127.0.0.1. A checkout serves the TypeScript harness page (`src/harness/browser/index.html`)
 * through a Vite dev server, so no build step is needed; the installed package serves the page prebuilt by
 * `prepack` (dist/lib/harness.html, `vite build -c vite.lib.config.ts --mode harness`) and the guest
 * images from its own small static server, with no Vite or tsx at run time. A user's kernel, initrd or
 * image directory is served by path.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "../node/chromium.js";
import { serveStatic } from "../node/static-server.js";
import { HarnessInputError, type Executor } from "./runner.js";
import type { CaseResult, HarnessEvent, TestGroup } from "./types.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith(".ts");
/** The prebuilt page (names: HARNESS_PAGE in vite.lib.config.ts). */
const BUILT_PAGE = "dist/lib/harness.html";

interface PageServer {
  /** The harness page's URL. */
  page: string;
  /** A URL the page can fetch for a local file or directory (http(s) URLs pass through). */
  url(path: string): string;
  close(): Promise<void>;
}

/** The checkout's page, compiled on the fly by Vite (which serves local files under /@fs/). */
async function viteServer(): Promise<PageServer> {
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
  const url = (p: string) => `/@fs${resolve(p)}${statSync(p, { throwIfNoEntry: false })?.isDirectory() ? "/" : ""}`;
  return { page: `${base}src/harness/browser/index.html`, url, close: () => server.close() };
}

/** The installed package's prebuilt page, from the package root (its module finds ../../public/guest/). */
async function packageServer(): Promise<PageServer> {
  if (!existsSync(resolve(ROOT, BUILT_PAGE))) {
    throw new HarnessInputError(`--browser needs the prebuilt harness page ${resolve(ROOT, BUILT_PAGE)}, which is missing: in a checkout of v86-balloon run \`npm run build:lib\` (npm pack runs it), or drop --browser to run in Node`);
  }
  const server = await serveStatic(ROOT);
  return { page: `${server.url}${BUILT_PAGE}`, url: (p) => server.file(p), close: () => server.close() };
}

export async function browserExecutor(opts: { workers: number; kernel?: string; initrd?: string }): Promise<Executor> {
  const server = FROM_SOURCE ? await viteServer() : await packageServer();
  /** Local image paths become URLs the server answers. */
  const toUrl = (p: string | undefined) => (!p ? undefined : /^https?:\/\//.test(p) ? p : server.url(p));
  let browser: Browser;
  try {
    const { launchChromium, CHROMIUM } = await import("../node/chromium.js").catch((e: Error) => {
      throw new HarnessInputError(`--browser drives Debian's Chromium through the playwright-core package, which did not load (${e.message}): install it with \`npm install playwright-core\``);
    });
    if (!existsSync(CHROMIUM)) {
      throw new HarnessInputError(`--browser runs Debian's Chromium, and ${CHROMIUM} is missing: install it with \`sudo apt-get install chromium\`, or drop --browser to run in Node`);
    }
    browser = await launchChromium();
  } catch (e) {
    await server.close();
    throw e;
  }
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
    // A cold Vite dev server on a loaded machine can take well over playwright's default 30 s.
    await page.goto(server.page, { timeout: 180_000 });
    try {
      await page.waitForFunction(() => (window as unknown as { __harness?: { ready: boolean } }).__harness?.ready === true, null, { timeout: 120_000 });
    } catch (e) {
      throw new Error(`the harness page did not load (${(e as Error).message}); console:\n${consoleTail.join("\n")}`);
    }
    return page;
  }

  return {
    async run(groups, lib, emit, traceAll, shouldStop, extra) {
      const lanes = Math.max(1, Math.min(opts.workers, groups.length));
      const queue: TestGroup[] = groups.map((g) => ({
        ...g,
        boot: { ...g.boot, kernel: toUrl(opts.kernel ?? g.boot.kernel), initrd: toUrl(opts.initrd ?? g.boot.initrd), imageDir: toUrl(g.boot.imageDir) },
      }));
      const all = await Promise.all(
        Array.from({ length: lanes }, async () => {
          const page = await newPage(emit);
          const out: CaseResult[] = [];
          for (;;) {
            const g = shouldStop() ? undefined : queue.shift();
            if (!g) break;
            const r = await page.evaluate(
              ([group, libText, all, more]) =>
                (window as unknown as { __harness: { runGroup(g: unknown, l: string, t: boolean, x: unknown): Promise<CaseResult[]> } }).__harness.runGroup(group, libText, all, more),
              [g, lib, traceAll, extra ?? {}] as const,
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

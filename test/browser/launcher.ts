/**
 * Shared helper for the Chromium tests and the demo benchmark: a static server for the built site
 * and Debian's Chromium driven by playwright-core, one browser at a time per machine.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DIST = join(ROOT, "dist");
export const ARTIFACTS = join(ROOT, "test-artifacts");

/** Why the browser tests cannot run here, or null. Only a missing Chromium is a reason to skip. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is absent: browser tests skipped (install it with \`npm run test:setup\`)`;
}

/** Throws unless the site was built (npm test builds it first). */
export function requireBuiltSite(): void {
  if (!existsSync(join(DIST, "index.html")) || !existsSync(join(DIST, "guest", "manifest.json"))) {
    throw new Error(`the built site is missing (${DIST}/index.html, ${DIST}/guest/): run \`npm run build\` first`);
  }
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".d.ts": "text/plain; charset=utf-8",
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `roots` (first match wins) on 127.0.0.1 at a free port. */
export async function serveStatic(...roots: string[]): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    for (const root of roots) {
      let file = normalize(join(root, path));
      if (file !== root && !file.startsWith(resolve(root) + sep)) break;
      try {
        if (statSync(file).isDirectory()) file = join(file, "index.html");
        const body = readFileSync(file);
        res.writeHead(200, {
          "content-type": MIME[extname(file)] ?? "application/octet-stream",
          "content-length": body.length,
          "cache-control": "no-store",
        });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      } catch {
        /* next root */
      }
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(`not found: ${path}`);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("static server has no port");
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

// ---- one Chromium at a time on this machine (2 cores; vitest runs files in parallel) ----
const LOCK = join(tmpdir(), "v86-balloon-chromium.lock");

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function acquireLock(timeoutMs: number): Promise<() => void> {
  const start = Date.now();
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, "pid"), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(join(LOCK, "pid"), "utf8"));
      } catch {
        /* being created or removed */
      }
      if (holder && !pidAlive(holder)) rmSync(LOCK, { recursive: true, force: true });
      if (Date.now() - start > timeoutMs) throw new Error(`another Chromium test held ${LOCK} for ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Debian's Chromium with a fresh temporary profile; waits for any other test's Chromium to close. */
export async function launchChromium(opts: { viewport?: { width: number; height: number }; lockTimeoutMs?: number } = {}): Promise<Browser> {
  const release = await acquireLock(opts.lockTimeoutMs ?? 15 * 60_000);
  const profile = mkdtempSync(join(tmpdir(), "v86-balloon-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: opts.viewport ?? { width: 1440, height: 900 },
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    release();
    throw e;
  }
  // tsx/esbuild (keepNames) wraps functions passed to page.evaluate in __name(): give pages one.
  await context.addInitScript({ content: "globalThis.__name ??= (f) => f;" });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  page.on("response", (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  (page as Page & { errors?: string[] }).errors = errors;
  return {
    context,
    page,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
        release();
      }
    },
  };
}

/** Page errors and console errors seen so far. */
export function pageErrors(page: Page): string[] {
  return (page as Page & { errors?: string[] }).errors ?? [];
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

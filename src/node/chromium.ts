/**
 * Debian's Chromium (never a downloaded browser) driven by playwright-core, with a fresh temporary
 * profile and one browser at a time on this machine. Used by the browser tests, the benchmarks and
 * the harness's `--browser` mode.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

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


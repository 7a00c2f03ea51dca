/** Helpers to drive the demo page through `window.__demo` (exposed by src/demo/main.ts). */
import { createRequire } from "node:module";
import type { BrowserContext, Page } from "playwright-core";

/** Waits until the demo's guest is at its prompt (or fails with the page's error). */
export async function waitReady(page: Page, timeoutMs = 150_000): Promise<void> {
  const handle = await page.waitForFunction(
    () => {
      const d = (window as unknown as { __demo?: { state: string; error: string | null } }).__demo;
      if (!d) return false;
      if (d.state === "error") return `error: ${d.error}`;
      return d.state === "ready" ? "ready" : false;
    },
    undefined,
    { timeout: timeoutMs, polling: 250 },
  );
  const v = await handle.jsonValue();
  if (v !== "ready") throw new Error(`demo did not boot: ${v}`);
}

export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => (window as unknown as { __demo: { text(): string } }).__demo.text());
}

/** Waits until the terminal text (after `from` characters) matches. */
export async function waitForTerminal(page: Page, pattern: RegExp, from = 0, timeoutMs = 30_000): Promise<string> {
  const start = Date.now();
  for (;;) {
    const text = await terminalText(page);
    if (pattern.test(text.slice(from))) return text;
    if (Date.now() - start > timeoutMs) {
      throw new Error(`terminal did not show ${pattern} within ${timeoutMs} ms; it ends with:\n${text.slice(-1500)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Opens the demo with `query` in a fresh page of `browser` and waits for the prompt. */
export async function bootDemo(browser: { context: BrowserContext }, url: string, query: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(`${url}index.html${query}`);
  await waitReady(page);
  await waitGuestSize(page);
  return page;
}

/** Types `command` into the guest through the page (as the terminal would) and waits for `pattern` after it. */
export async function runInTerminal(page: Page, command: string, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  const before = (await terminalText(page)).length;
  await page.evaluate((c) => window.__demo.vm!.send(c + "\n"), command);
  return (await waitForTerminal(page, pattern, before, timeoutMs)).slice(before);
}

/** Waits until the guest has been told the terminal's current size; returns [rows, cols]. */
export async function waitGuestSize(page: Page, timeoutMs = 30_000): Promise<[number, number]> {
  const h = await page.waitForFunction(
    () => {
      const d = window.__demo;
      const g = d.console.guestSize;
      const t = d.terminal.term;
      return g && g[0] === t.rows && g[1] === t.cols ? g : false;
    },
    undefined,
    { timeout: timeoutMs, polling: 200 },
  );
  return (await h.jsonValue()) as [number, number];
}

/** axe-core's serious and critical violations on the page as it is now (axe injected on first use). */
export async function axeFindings(page: Page): Promise<{ serious: string[]; critical: string[] }> {
  if (!(await page.evaluate(() => "axe" in window))) {
    await page.addScriptTag({ path: createRequire(import.meta.url).resolve("axe-core/axe.min.js") });
  }
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ["violations"] });
    const of = (impact: string) => r.violations.filter((v) => v.impact === impact).map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    return { serious: of("serious"), critical: of("critical") };
  });
}


/** Helpers to drive the demo page through `window.__demo` (exposed by src/demo/main.ts). */
import type { Page } from "playwright-core";

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

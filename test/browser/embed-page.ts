/** Page-side helpers for the `<v86-balloon-vm>` tests. */
import type { Page } from "playwright-core";

/** Resolves once `<v86-balloon-vm id=...>` is at its prompt (rejects with its error). */
export async function waitElementReady(page: Page, id: string, timeoutMs = 180_000): Promise<void> {
  await page.waitForFunction((id) => customElements.get("v86-balloon-vm") && document.getElementById(id), id, { timeout: 30_000 });
  await page.evaluate(
    ([id, ms]) =>
      Promise.race([
        (document.getElementById(id as string) as HTMLElement & { ready: Promise<unknown> }).ready,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`${id} not ready after ${ms} ms`)), ms as number)),
      ]).then(() => undefined),
    [id, timeoutMs] as const,
  );
}

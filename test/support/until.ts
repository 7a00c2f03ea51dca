/** Polls `cond` until it holds; throws with `what` (and `detail()`) after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 30000, detail?: () => string): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

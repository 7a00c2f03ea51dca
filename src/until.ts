/** Waiting on conditions (never on fixed sleeps): the snapshot CLI, the tests and the benches. */

/** Polls `cond` every 50 ms; false if it did not hold within `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** Polls `cond` until it holds; throws with `what` (and `detail()`) after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 30000, detail?: () => string): Promise<void> {
  if (!(await waitFor(cond, timeoutMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ""}`);
}

/** Waits until `value()` has not changed for `quietMs` (e.g. free page reports, which come ~2 s apart). */
export async function untilStable(value: () => number, what: string, quietMs = 3000, timeoutMs = 60000): Promise<void> {
  let last = Number.NaN;
  let since = Date.now();
  await until(() => {
    const now = value();
    if (now !== last) [last, since] = [now, Date.now()];
    return Date.now() - since > quietMs;
  }, what, timeoutMs);
}

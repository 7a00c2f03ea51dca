/** Helpers shared by the benchmark groups. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Milliseconds until `done()` holds, polling every millisecond (the same cost for every variant). */
export async function msUntil(done: () => boolean, timeoutMs = 120000): Promise<number> {
  const start = performance.now();
  while (!done()) {
    if (performance.now() - start > timeoutMs) throw new Error(`benchmark step timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
  return performance.now() - start;
}

/** Guest instructions between two reads of v86's u32 counter (one wrap at most between reads). */
export function instructionsSince(before: number, after: number): number {
  return (after - before) >>> 0;
}

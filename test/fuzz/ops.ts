/**
 * The fuzzer's operations: plain JSON, so a failing sequence replays exactly and is kept as a repro case.
 * Only BAR accesses, host calls, clock steps and save/restore are requests to the device; `m` / `f` are the
 * driver writing its own memory (rings, buffers), as a driver does between requests.
 */
export type HostCall = "setTarget" | "setStatsInterval" | "startHinting" | "stopHinting" | "finishHinting" | "requestStats";

export type Op =
  /** BAR write: offset, width, value. */
  | { t: "w"; o: number; w: 1 | 2 | 4; v: number }
  /** BAR read. */
  | { t: "r"; o: number; w: 1 | 2 | 4 }
  /** Driver writes bytes (hex) at guest-physical `a`. */
  | { t: "m"; a: number; h: string }
  /** Driver fills guest-physical [a, a+n) with byte b. */
  | { t: "f"; a: number; n: number; b: number }
  /** Host API call with one numeric argument where it takes one. */
  | { t: "h"; c: HostCall; a?: number }
  /** Advance the fake clock (stats polling, delayed used buffers, config storms). */
  | { t: "clk"; ms: number }
  /** Save the device's state and restore it (into the same device, or into a freshly built one). */
  | { t: "sr"; fresh?: boolean }
  /** Save, mutate with seed `s` into a hostile or truncated state, restore. */
  | { t: "mut"; s: number }
  /** Restore exactly this state (JSON text and bitmap hex): a `mut` made concrete for a repro case. */
  | { t: "restore"; j: string; b: string };

export const isRequest = (op: Op): boolean => op.t !== "m" && op.t !== "f";

export function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export function fromHex(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, "hex"));
}

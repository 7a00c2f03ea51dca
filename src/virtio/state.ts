/**
 * Saved states are input: every restore parses the whole state first, with these readers, into plain
 * values; nothing live changes until every part (transport, queues, device) has parsed and the
 * cross-checks have passed (Firecracker's restore model: build the new state apart, then commit).
 * A refusal is always one `StateError` naming the first bad field by its path.
 */

/** The one error a refused saved state produces. `path` names the field, e.g. `transport.queues[1].descAddr`. */
export class StateError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`bad saved state: ${path}: ${reason}`);
    this.name = "StateError";
  }
}

export type Obj = Record<string, unknown>;

export const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * Upper bound of a saved 64-bit address register. Registers are JS numbers; a driver may write any
 * 64-bit value (diagnosed when it is not a safe integer), which rounds to at most 2^64.
 */
export const MAX_ADDR_REG = 2 ** 64;

/** Typed, path-tracking readers over one object of a saved state. */
export class StateReader {
  constructor(readonly path: string, readonly raw: Obj) {}

  static root(path: string, raw: unknown): StateReader {
    if (!isObj(raw)) throw new StateError(path, "not an object");
    return new StateReader(path, raw);
  }

  at(key: string): string {
    return `${this.path}.${key}`;
  }

  fail(key: string, reason: string): never {
    throw new StateError(this.at(key), reason);
  }

  obj(key: string): StateReader {
    const v = this.raw[key];
    if (!isObj(v)) this.fail(key, "not an object");
    return new StateReader(this.at(key), v);
  }

  array(key: string): unknown[] {
    const v = this.raw[key];
    if (!Array.isArray(v)) this.fail(key, "not an array");
    return v;
  }

  bool(key: string): boolean {
    const v = this.raw[key];
    if (typeof v !== "boolean") this.fail(key, "not a boolean");
    return v;
  }

  /** An integer in [min, max]. */
  int(key: string, min: number, max: number): number {
    const v = this.raw[key];
    if (typeof v !== "number" || !Number.isInteger(v)) this.fail(key, `not an integer (${describe(v)})`);
    if (v < min || v > max) this.fail(key, `${v} outside [${min}, ${max}]`);
    return v;
  }

  u8(key: string): number { return this.int(key, 0, 0xff); }
  u16(key: string): number { return this.int(key, 0, 0xffff); }
  u32(key: string): number { return this.int(key, 0, 0xffffffff); }

  /** A finite non-negative count (counters may exceed 2^32). */
  count(key: string): number {
    const v = this.raw[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) this.fail(key, `not a count (${describe(v)})`);
    return v;
  }

  /** A 64-bit unsigned value saved as a decimal string. */
  u64(key: string): bigint {
    const v = this.raw[key];
    if (typeof v !== "string" || !/^\d{1,20}$/.test(v)) this.fail(key, `not a decimal 64-bit string (${describe(v)})`);
    const b = BigInt(v);
    if (b >= 1n << 64n) this.fail(key, "more than 64 bits");
    return b;
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.raw[key];
    if (typeof v !== "string" || !values.includes(v as T)) this.fail(key, `not one of ${values.join(", ")} (${describe(v)})`);
    return v as T;
  }
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? "an array" : typeof v;
}

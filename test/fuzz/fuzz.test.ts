/**
 * The fuzz target at CI size (fixed seeds, zero findings allowed): ~100k mixed and ~100k notify-heavy
 * requests through the BAR, host API and save/restore, 50k direct hot-path calls, 2k hostile restores.
 * `npm run fuzz` runs the same code longer (README "Fuzzing"). Each run first proves it exercised what it
 * claims (notifies modelled byte for byte, restores refused and accepted) before it asserts no findings.
 */
import { describe, expect, it } from "vitest";
import { fuzzHotPath } from "./hotpath-direct.js";
import { Session } from "./engine.js";
import { fuzz, type RunSummary } from "./run.js";
import type { RigConfig } from "./rig.js";

const show = (s: RunSummary) => s.findings.map((f) => `[${f.cls}] ${f.message.slice(0, 400)}`);

describe("fuzz: CI size, fixed seeds", () => {
  const runs = [
    { name: "mixed: 100k requests (negotiation in and out of order, resets, registers at every width, host API, save/restore)", seed: 20261202, mode: "mixed", exact: 5_000 },
    { name: "notify-heavy: 100k requests (chains per queue role, hostile chains, avail-idx jumps)", seed: 14, mode: "notify", exact: 20_000 },
  ] as const;
  for (const run of runs) {
    it(run.name, async () => {
      const s = await fuzz({ seed: run.seed, mode: run.mode, requests: 100_000 });
      expect(s.requests).toBeGreaterThanOrEqual(100_000);
      expect(s.exactNotifies).toBeGreaterThan(run.exact);
      expect(show(s)).toEqual([]);
    }, 600_000);
  }

  it("hostile restores: 2k mutated or truncated states", async () => {
    const s = await fuzz({ seed: 7, mode: "restore", requests: 4_200 });
    expect(s.restoreMutations).toBeGreaterThanOrEqual(2_000);
    expect(show(s)).toEqual([]);
  }, 600_000);

  it("direct hot-path calls: 50k, wasm and JS reference in lock-step", async () => {
    const found: string[] = [];
    let calls = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const d = await fuzzHotPath(seed, 10_000);
      calls += d.calls;
      found.push(...d.findings);
    }
    expect(calls).toBe(50_000);
    expect(found).toEqual([]);
  }, 600_000);
});

describe("fuzz: the invariants catch what they claim to", () => {
  const config: RigConfig = { ram: 256 << 10, base: 4096, offer: {}, faults: {}, zeroFreedPages: true, hintAutoDone: true, initialTarget: 0, fill: 0x5a };
  /** A live device with an inflate queue (size 8) and one chain of PFNs [40, 41] ready on it. */
  async function liveWithChain(): Promise<Session> {
    const s = await Session.create(config);
    const ops = [
      { t: "w", o: 0x14, w: 1, v: 3 }, { t: "w", o: 0x08, w: 4, v: 1 }, { t: "w", o: 0x0c, w: 4, v: 1 }, { t: "w", o: 0x14, w: 1, v: 0xb },
      { t: "w", o: 0x16, w: 2, v: 0 }, { t: "w", o: 0x18, w: 2, v: 8 }, { t: "w", o: 0x20, w: 4, v: 0x2000 }, { t: "w", o: 0x28, w: 4, v: 0x2080 },
      { t: "w", o: 0x30, w: 4, v: 0x2100 }, { t: "f", a: 0x2000, n: 0x200, b: 0 }, { t: "w", o: 0x1c, w: 2, v: 1 }, { t: "w", o: 0x14, w: 1, v: 0xf },
      { t: "m", a: 0x3000, h: "2800000029000000" }, { t: "m", a: 0x2000, h: "0030000000000000080000000000" + "0000" },
      { t: "m", a: 0x2082, h: "0100" },
    ] as const;
    for (const op of ops) await s.apply(op);
    expect(s.findings).toEqual([]);
    return s;
  }

  it("a write the device does not dirty is found", async () => {
    const s = await liveWithChain();
    s.a.mem.dirty = () => {};
    await s.apply({ t: "w", o: 0x80, w: 2, v: 0 });
    expect(s.findings.map((f) => f.cls)).toContain("undirtied-write");
  });

  it("a damaged canary, a wasm/JS difference and an exception are found", async () => {
    const s = await liveWithChain();
    new Uint8Array(s.a.mem.memory.buffer)[s.a.mem.base + s.a.mem.size + 3]! ^= 1;
    s.b.mem.bytes()[0x1000] ^= 1;
    s.a.transport.barWrite = () => { throw new TypeError("boom"); };
    await s.apply({ t: "w", o: 0x14, w: 1, v: 0xf });
    const classes = s.findings.map((f) => f.cls);
    expect(classes).toContain("canary");
    expect(classes).toContain("lockstep:ram");
    expect(classes).toContain("exception:w");
  });

  it("a notify whose pages are not filled is a model mismatch, and diagnostics are checked against the model", async () => {
    const s = await liveWithChain();
    s.a.device.hot.fillPfns = () => ({ filled: 0, outOfRange: 0, firstBadIndex: -1, alreadyInflated: 0, runs: 0, pagesWritten: 0 });
    await s.apply({ t: "w", o: 0x80, w: 2, v: 0 });
    expect(s.findings.map((f) => f.cls)).toContain("model-mismatch");
  });
});

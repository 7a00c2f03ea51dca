/**
 * Every sequence the fuzzer once failed on, minimised (test/fuzz/regressions/*.json, written by
 * `npm run fuzz -- --minimize`), replayed with all invariants: each must now show no finding at all.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { replay, type Repro } from "./run.js";

const dir = new URL("./regressions/", import.meta.url);
const cases = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

describe("fuzz regressions", () => {
  it("the directory holds the cases", () => {
    expect(cases.length).toBeGreaterThan(10);
  });
  for (const file of cases) {
    const repro = JSON.parse(readFileSync(new URL(file, dir), "utf8")) as Repro;
    it(`${file}: ${repro.title ?? repro.cls}`, async () => {
      const found = await replay(repro.config, repro.ops);
      expect(found.map((f) => `op ${f.op}: [${f.cls}] ${f.message.slice(0, 400)}`)).toEqual([]);
    });
  }
});

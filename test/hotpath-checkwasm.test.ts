/** scripts/check-wasm.mjs refuses modules that would write into / run inside v86's memory at instantiation. */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../scripts/check-wasm.mjs", import.meta.url));
const built = fileURLToPath(new URL("../build/hotpath.wasm", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "check-wasm-"));

function run(file: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [script, file], { encoding: "utf8" });
  return { code: r.status, out: r.stdout + r.stderr };
}

const str = (s: string) => [s.length, ...Buffer.from(s)];
const section = (id: number, body: number[]) => [id, body.length, ...body]; // bodies < 128 bytes here

interface Parts { memMin?: number; memMax?: number; extraImport?: number[]; data?: boolean; start?: boolean; exportMemory?: boolean; dataCount?: boolean }

function module(p: Parts = {}): Uint8Array<ArrayBuffer> {
  const type = section(1, [1, 0x60, 2, 0x7f, 0x7f, 0]);
  const memLimits = p.memMax === undefined ? [0, p.memMin ?? 0] : [1, p.memMin ?? 0, p.memMax];
  const imports = [
    [...str("env"), ...str("memory"), 2, ...memLimits],
    [...str("env"), ...str("dirty"), 0, 0],
    ...(p.extraImport ? [p.extraImport] : []),
  ];
  const imp = section(2, [imports.length, ...imports.flat()]);
  const bytes = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...imp];
  if (p.exportMemory) bytes.push(...section(7, [1, ...str("memory"), 2, 0]));
  if (p.start) bytes.push(...section(8, [0]));
  if (p.dataCount) bytes.push(...section(12, [1]));
  if (p.data) bytes.push(...section(11, [1, 0, 0x41, 0x80, 0x08, 0x0b, 1, 0x78]));
  return new Uint8Array(bytes);
}

function check(name: string, bytes: Uint8Array) {
  const f = join(dir, `${name}.wasm`);
  writeFileSync(f, bytes);
  return run(f);
}

describe("check-wasm", () => {
  it("passes the real build/hotpath.wasm", () => {
    const r = run(built);
    expect(r.out).toMatch(/OK/);
    expect(r.code).toBe(0);
  });

  it("passes a minimal module that only imports env.memory and env.dirty", () => {
    const m = module();
    expect(WebAssembly.validate(m)).toBe(true);
    expect(check("ok", m).code).toBe(0);
  });

  it("fails on a Data section (would be written at address 1024 of v86's memory)", () => {
    const m = module({ data: true });
    expect(WebAssembly.validate(m)).toBe(true);
    const r = check("data", m);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/Data section/);
  });

  it("fails on Start, DataCount, memory export, extra imports, bad memory limits", () => {
    const cases: Array<[string, Parts, RegExp]> = [
      ["start", { start: true }, /Start section/],
      ["datacount", { dataCount: true }, /DataCount/],
      ["export", { exportMemory: true }, /memory export/],
      ["abort", { extraImport: [...str("env"), ...str("abort"), 0, 0] }, /env\.abort not allowed/],
      ["global", { extraImport: [...str("env"), ...str("g"), 3, 0x7f, 0] }, /global import/],
      ["min", { memMin: 1 }, /initial 1 pages/],
      ["max", { memMax: 100 }, /maximum/],
    ];
    for (const [name, parts, re] of cases) {
      const r = check(name, module(parts));
      expect(r.code, name).toBe(1);
      expect(r.out, name).toMatch(re);
    }
  });

  it("fails on garbage and truncated files", () => {
    expect(check("garbage", new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])).code).toBe(1);
    const m = module();
    expect(check("trunc", m.subarray(0, m.length - 3)).code).toBe(1);
  });
});

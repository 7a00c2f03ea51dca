#!/usr/bin/env node
// Usage: node scripts/check-wasm.mjs build/hotpath.wasm
//
// The hot-path module is instantiated on v86's own WebAssembly.Memory. Anything it writes at
// instantiation (a Data section) or runs at instantiation (a Start section) lands in v86's state,
// so this check FAILS (exit 1) on:
//   - a Data (11), DataCount (12) or Start (8) section,
//   - a Memory section (the module must not define memory) or a memory export,
//   - any import other than `env.memory` (memory, initial 0, no maximum, unshared) and the function
//     imports allowed below (`env.dirty`).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const ALLOWED_FUNC_IMPORTS = ["env.dirty"];

const SECTION_NAMES = [
  "custom", "type", "import", "function", "table", "memory", "global", "export",
  "start", "element", "code", "data", "datacount", "tag",
];

class Reader {
  constructor(bytes) { this.b = bytes; this.p = 0; }
  eof() { return this.p >= this.b.length; }
  byte() {
    if (this.p >= this.b.length) throw new Error(`unexpected end of binary at ${this.p}`);
    return this.b[this.p++];
  }
  u32() {
    let result = 0, shift = 0;
    for (;;) {
      const x = this.byte();
      result += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new Error(`bad LEB128 at ${this.p}`);
    }
  }
  name() {
    const n = this.u32();
    if (this.p + n > this.b.length) throw new Error(`name past end at ${this.p}`);
    const s = new TextDecoder().decode(this.b.subarray(this.p, this.p + n));
    this.p += n;
    return s;
  }
  limits() {
    const flags = this.byte();
    const min = this.u32();
    const max = flags & 1 ? this.u32() : undefined;
    return { flags, min, max, shared: (flags & 2) !== 0, is64: (flags & 4) !== 0 };
  }
}

/** Returns a list of problems (empty = OK). Throws nothing: parse errors are problems too. */
export function checkWasm(bytes) {
  const problems = [];
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (b.length < 8 || b[0] !== 0 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) {
    return ["not a WebAssembly binary (bad magic)"];
  }
  if (b[4] !== 1 || b[5] !== 0 || b[6] !== 0 || b[7] !== 0) return ["unsupported WebAssembly version"];
  const r = new Reader(b);
  r.p = 8;
  let memoryImports = 0;
  try {
    while (!r.eof()) {
      const id = r.byte();
      const size = r.u32();
      const start = r.p;
      const end = start + size;
      if (end > b.length) { problems.push(`section ${id} runs past the end of the file`); break; }
      if (id === 8) problems.push("Start section present: code would run inside v86's memory at instantiation");
      if (id === 11) {
        const s = new Reader(b.subarray(start, end));
        const n = s.u32();
        if (n > 0) problems.push(`Data section present (${n} segment(s)): it would be written into v86's memory at instantiation`);
        else problems.push("Data section present (empty)");
      }
      if (id === 12) problems.push("DataCount section present (data segments / passive data)");
      if (id === 5) problems.push("Memory section present: the module must import env.memory, not define one");
      if (id >= SECTION_NAMES.length) problems.push(`unknown section id ${id}`);
      if (id === 2) {
        const s = new Reader(b.subarray(start, end));
        const n = s.u32();
        for (let i = 0; i < n; i++) {
          const mod = s.name();
          const field = s.name();
          const kind = s.byte();
          const full = `${mod}.${field}`;
          if (kind === 0) {
            s.u32();
            if (!ALLOWED_FUNC_IMPORTS.includes(full)) problems.push(`function import ${full} not allowed (allowed: ${ALLOWED_FUNC_IMPORTS.join(", ")})`);
          } else if (kind === 2) {
            const lim = s.limits();
            memoryImports++;
            if (full !== "env.memory") problems.push(`memory import ${full}: only env.memory allowed`);
            if (lim.min !== 0) problems.push(`memory import ${full} has initial ${lim.min} pages (must be 0 to link to any host memory)`);
            if (lim.max !== undefined) problems.push(`memory import ${full} declares a maximum (${lim.max}); v86's memory has none`);
            if (lim.shared) problems.push(`memory import ${full} is shared; v86's memory is not`);
            if (lim.is64) problems.push(`memory import ${full} is memory64`);
          } else if (kind === 1) {
            s.byte(); s.limits();
            problems.push(`table import ${full} not allowed`);
          } else if (kind === 3) {
            s.byte(); s.byte();
            problems.push(`global import ${full} not allowed`);
          } else if (kind === 4) {
            s.byte(); s.u32();
            problems.push(`tag import ${full} not allowed`);
          } else {
            problems.push(`import ${full} of unknown kind ${kind}`);
            break;
          }
        }
      }
      if (id === 7) {
        const s = new Reader(b.subarray(start, end));
        const n = s.u32();
        for (let i = 0; i < n; i++) {
          const field = s.name();
          const kind = s.byte();
          s.u32();
          if (kind === 2) problems.push(`memory export "${field}": the module must not export v86's memory`);
        }
      }
      r.p = end;
    }
  } catch (e) {
    problems.push(`malformed binary: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (memoryImports !== 1) problems.push(`expected exactly one memory import (env.memory), found ${memoryImports}`);
  return problems;
}

function main(argv) {
  const file = argv[2];
  if (!file) {
    console.error("usage: node scripts/check-wasm.mjs <file.wasm>");
    return 2;
  }
  let bytes;
  try { bytes = readFileSync(file); } catch (e) {
    console.error(`check-wasm: cannot read ${file}: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  const problems = checkWasm(bytes);
  if (problems.length) {
    console.error(`check-wasm: FAIL ${file}`);
    for (const p of problems) console.error(`  - ${p}`);
    return 1;
  }
  console.log(`check-wasm: OK ${file} (${bytes.length} bytes; imports env.memory + ${ALLOWED_FUNC_IMPORTS.join(", ")}; no data/start)`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv);
}

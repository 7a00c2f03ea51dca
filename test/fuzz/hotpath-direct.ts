/**
 * Direct hot-path calls: the wasm module and the JS reference side by side on identical memories, with
 * guest-controlled arguments made hostile (addresses at and past RAM's end, past 4 GiB, counts that wrap,
 * chains that loop) and host-chosen ones (scratch pointers, segment limits) kept as the device passes them.
 * After each call: equal results, equal guest RAM and scratch, canaries intact, every changed guest byte
 * dirtied, no dirty() outside RAM.
 */
import { loadHotPath, referenceHotPath, type HotPath } from "../../src/hotpath/hotpath.js";
import { FILL_BITMAP_GUEST, FILL_LIE, FILL_NO_FILL, FILL_SET_PADDING } from "../../src/hotpath/types.js";
import { createFuzzMemory, type FuzzMemory } from "./memory.js";
import { rng } from "../../devkit/rng.js";

export interface DirectSummary { calls: number; findings: string[] }

interface Side { mem: FuzzMemory; hot: HotPath; seg: number; track: number; bitmap: number }

async function side(ram: number, base: number, kind: "wasm" | "js", init: Uint8Array): Promise<Side> {
  const mem = createFuzzMemory(ram, { base });
  mem.bytes().set(init);
  const hot = kind === "wasm" ? await loadHotPath(mem) : referenceHotPath(mem);
  return { mem, hot, seg: mem.allocScratch(256 * 12), track: mem.allocScratch(Math.ceil(ram / 4096 / 8)), bitmap: mem.allocScratch(512) };
}

export async function fuzzHotPath(seed: number, calls: number): Promise<DirectSummary> {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)]!;
  const findings: string[] = [];
  const ram = pick([64 << 10, 128 << 10, 256 << 10]);
  const init = new Uint8Array(ram);
  // Guest memory that looks like rings, PFN lists and garbage.
  for (let i = 0; i < ram; i += 4) {
    const k = r();
    const v = k < 0.3 ? int(ram / 4096 + 4) : k < 0.5 ? int(256) : k < 0.6 ? pick([0, 1, 2, 3, 4, 0xffffffff, ram, ram - 16]) : int(2 ** 32);
    new DataView(init.buffer).setUint32(i, v >>> 0, true);
  }
  const a = await side(ram, 8192, "wasm", init);
  const b = await side(ram, 8192 + 8 * (1 + (seed % 7)), "js", init);
  // Guest-controlled values as the device can pass them: integers (registers, descriptor fields, ring
  // entries), addresses anywhere up to and past 4 GiB, heads up to 2^16 - 1.
  const addr = () => pick([0, 4, 16, int(ram), ram - 4, ram - 16, ram, ram + 4, 2 ** 32 - 4, 2 ** 32, 2 ** 32 + 16]);
  // The device hands the hot path at most one 4096-PFN chunk per call.
  const count = () => (r() < 0.1 ? pick([1024, 4095, 4096]) : pick([0, 1, 7, 8, 9, 64, 256]));
  for (let c = 0; c < calls && findings.length < 20; c++) {
    const k = int(5);
    let call: string;
    let ra: unknown, rb: unknown;
    if (k === 0) {
      const desc = pick([addr(), int(ram / 16) * 16]), qsize = pick([0, 1, 2, 16, 256, 32768, 32769, 2 ** 32]), head = pick([0, 1, int(300), 2 ** 15, 2 ** 16 - 1]);
      const ind = r() < 0.5;
      call = `walkChain(${desc}, ${qsize}, ${head}, seg, 256, ${ind})`;
      ra = a.hot.walkChain(desc, qsize, head, a.seg, 256, ind);
      rb = b.hot.walkChain(desc, qsize, head, b.seg, 256, ind);
      if (typeof ra === "number" && ra > 0) {
        const sa = new Uint8Array(a.mem.memory.buffer, a.seg, ra * 12), sb = new Uint8Array(b.mem.memory.buffer, b.seg, ra * 12);
        if (Buffer.compare(sa, sb) !== 0) findings.push(`${call}: segment records differ`);
      }
    } else if (k === 1) {
      const n = count(), fill = int(256);
      const flags = pick([0, 0, FILL_LIE, FILL_SET_PADDING, FILL_NO_FILL, FILL_BITMAP_GUEST, FILL_BITMAP_GUEST | FILL_SET_PADDING]);
      const guest = (flags & FILL_BITMAP_GUEST) !== 0;
      // The device checks a PFN list lies in RAM before the hot path sees it; a guest bitmap may be anywhere.
      const p = guest ? int(Math.max(1, ram / 4 - n)) * 4 : pick([addr(), int(ram / 4) * 4]);
      const bm = guest ? pick([addr(), int(ram)]) : 1;
      const nn = guest ? n : Math.min(n, 4096); // the scratch bitmap holds one chunk
      call = `fillPfns(${p}, ${nn}, ${fill}, ${guest ? bm : "scratch"}, ${flags})`;
      ra = a.hot.fillPfns(p, nn, fill, guest ? bm : a.bitmap, flags, a.track);
      rb = b.hot.fillPfns(p, nn, fill, guest ? bm : b.bitmap, flags, b.track);
    } else if (k === 2) {
      const p = pick([addr(), int(ram / 4) * 4]), n = count();
      call = `unmarkPfns(${p}, ${n})`;
      ra = a.hot.unmarkPfns(p, n, a.track);
      rb = b.hot.unmarkPfns(p, n, b.track);
    } else if (k === 3) {
      const p = addr(), n = pick([0, 1, 4096, int(ram), ram, ram + 1, 2 ** 32 - 1, 2 ** 32]), fill = int(256);
      call = `fillRange(${p}, ${n}, ${fill})`;
      ra = a.hot.fillRange(p, n, fill);
      rb = b.hot.fillRange(p, n, fill);
    } else {
      const u = pick([addr(), int(ram / 4) * 4]), qsize = pick([0, 1, 2, 256, 32768, 32769]), idx = int(70000), id = int(2 ** 32), len = pick([0, 1, 2 ** 32 - 1, 2 ** 32]);
      call = `pushUsed(${u}, ${qsize}, ${idx}, ${id}, ${len})`;
      ra = a.hot.pushUsed(u, qsize, idx, id, len);
      rb = b.hot.pushUsed(u, qsize, idx, id, len);
    }
    if (JSON.stringify(ra) !== JSON.stringify(rb)) findings.push(`${call}: wasm ${JSON.stringify(ra)} vs JS ${JSON.stringify(rb)}`);
    if (Buffer.compare(a.mem.bytes(), b.mem.bytes()) !== 0) {
      findings.push(`${call}: guest RAM differs`);
      b.mem.bytes().set(a.mem.bytes());
    }
    const ta = new Uint8Array(a.mem.memory.buffer, a.track, Math.ceil(ram / 4096 / 8)), tb = new Uint8Array(b.mem.memory.buffer, b.track, ta.length);
    if (Buffer.compare(ta, tb) !== 0) { findings.push(`${call}: track bitmaps differ`); tb.set(ta); }
    const dmg = a.mem.guardDamage() ?? b.mem.guardDamage();
    if (dmg) { findings.push(`${call}: ${dmg}`); break; }
    for (const s of [a, b]) {
      const d = s.mem.takeDirty();
      for (const [x, y] of d) if (!(x >= 0 && y <= ram && x < y)) findings.push(`${call} (${s.hot.kind}): dirty(${x}, ${y}) outside RAM`);
      const before = init, now = s.mem.bytes();
      for (let p = 0; p < ram; p += 4096) {
        if (Buffer.compare(before.subarray(p, p + 4096), now.subarray(p, p + 4096)) === 0) continue;
        for (let i = p; i < p + 4096; i++) {
          if (before[i] !== now[i] && !d.some(([x, y]) => x <= i && i < y)) { findings.push(`${call} (${s.hot.kind}): guest byte 0x${i.toString(16)} changed, not dirtied`); break; }
        }
      }
    }
    init.set(a.mem.bytes());
  }
  return { calls, findings };
}

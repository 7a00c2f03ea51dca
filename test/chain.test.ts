import { describe, expect, it } from "vitest";
import { createTestMemory, type TestMemory } from "./support/test-memory.js";
import { loadHotPath, referenceHotPath, WALK_ERRORS, type HotPath } from "../src/hotpath/hotpath.js";
import { CHAIN_ERROR_KINDS, ChainError, type ChainErrorKind, Virtqueue } from "../src/virtio/virtqueue.js";
import { MockQueue, VIRTQ_DESC_F_INDIRECT as IND, VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE } from "./support/mock-driver.js";

const RAM = 2 << 20;
const SIZE = 16;

interface Env { mem: TestMemory; hot: HotPath; q: MockQueue; vq: Virtqueue }

async function env(impl: "wasm" | "js", opts: { maxSegments?: number; indirect?: boolean } = {}): Promise<Env> {
  const mem = createTestMemory(RAM);
  const hot = impl === "wasm" ? await loadHotPath(mem) : referenceHotPath(mem);
  const q = new MockQueue(mem, { size: SIZE });
  const vq = new Virtqueue(mem, hot, 3, SIZE, opts.maxSegments ? { maxSegments: opts.maxSegments } : {});
  expect(q.attach(vq)).toBeNull();
  vq.allowIndirect = opts.indirect ?? true;
  return { mem, hot, q, vq };
}

function expectKind(e: Env, kind: ChainErrorKind, head: number): void {
  let err: unknown;
  try { e.vq.pop(); } catch (x) { err = x; }
  expect(err).toBeInstanceOf(ChainError);
  expect((err as ChainError).kind).toBe(kind);
  expect((err as ChainError).head).toBe(head);
  expect((err as ChainError).queue).toBe(3);
  expect(e.vq.lastAvailIdx).toBe(1); // head consumed
  e.vq.push(head < SIZE ? head : 0, 0);
  expect(e.mem.guardsIntact()).toBe(true);
  expect(e.mem.badDirty).toEqual([]);
}

const BUF = 0x100000;
type Case = { kind: ChainErrorKind; name: string; opts?: { maxSegments?: number; indirect?: boolean }; build(e: Env): number };

const cases: Case[] = [
  { kind: "head-out-of-range", name: "avail ring entry >= queue size", build: (e) => { e.q.publish(SIZE); return SIZE; } },
  { kind: "next-out-of-range", name: "next >= queue size", build: (e) => {
    e.q.desc(0, { addr: BUF, len: 4, flags: NEXT, next: SIZE }); e.q.publish(0); return 0; } },
  { kind: "next-out-of-range", name: "next >= indirect table entries", build: (e) => {
    const t = e.q.indirectTable([{ addr: BUF, len: 4, flags: NEXT, next: 1 }, { addr: BUF, len: 4, flags: NEXT, next: 2 }]);
    e.q.desc(0, { addr: t.addr, len: t.len, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "loop", name: "self loop", build: (e) => {
    e.q.desc(5, { addr: BUF, len: 4, flags: NEXT, next: 5 }); e.q.publish(5); return 5; } },
  { kind: "loop", name: "cycle through the whole table", build: (e) => {
    for (let i = 0; i < SIZE; i++) e.q.desc(i, { addr: BUF, len: 4, flags: NEXT, next: (i + 1) % SIZE });
    e.q.publish(0); return 0; } },
  { kind: "loop", name: "loop inside an indirect table", build: (e) => {
    const t = e.q.indirectTable([{ addr: BUF, len: 4, flags: NEXT, next: 1 }, { addr: BUF, len: 4, flags: NEXT, next: 0 }]);
    e.q.desc(2, { addr: t.addr, len: t.len, flags: IND }); e.q.publish(2); return 2; } },
  { kind: "segment-out-of-ram", name: "buffer crosses end of RAM", build: (e) => {
    e.q.desc(0, { addr: RAM - 4, len: 8 }); e.q.publish(0); return 0; } },
  { kind: "segment-out-of-ram", name: "u64 addr+len wraps to a small value", build: (e) => {
    e.q.desc(0, { addr: 0xfffffffffffffffcn, len: 8 }); e.q.publish(0); return 0; } },
  { kind: "segment-out-of-ram", name: "high 32 bits set (u32 truncation would alias low RAM)", build: (e) => {
    e.q.desc(0, { addr: 0x100000000n + 0x1000n, len: 8 }); e.q.publish(0); return 0; } },
  { kind: "segment-out-of-ram", name: "addr+len u32 wrap", build: (e) => {
    e.q.desc(0, { addr: 0xfffff000, len: 0x2000 }); e.q.publish(0); return 0; } },
  { kind: "zero-length", name: "len 0", build: (e) => {
    e.q.desc(0, { addr: BUF, len: 4, flags: NEXT, next: 1 }); e.q.desc(1, { addr: BUF, len: 0 }); e.q.publish(0); return 0; } },
  { kind: "readable-after-writable", name: "readable after writable", build: (e) => {
    e.q.addChain([{ len: 4, write: true }, { data: [1] }]); return 0; } },
  { kind: "readable-after-writable", name: "readable after writable inside indirect", build: (e) => {
    e.q.addChain([{ data: [1] }, { len: 4, write: true }, { data: [1] }], { indirect: true }); return 0; } },
  { kind: "too-many-segments", name: "chain longer than the device's segment limit", opts: { maxSegments: 4 }, build: (e) => {
    e.q.addChain([1, 2, 3, 4, 5].map((x) => ({ data: [x] }))); return 0; } },
  { kind: "bad-indirect-table", name: "indirect len 0", build: (e) => {
    e.q.desc(0, { addr: BUF, len: 0, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "bad-indirect-table", name: "indirect len not a multiple of 16", build: (e) => {
    e.q.desc(0, { addr: BUF, len: 24, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "bad-indirect-table", name: "indirect table crosses end of RAM", build: (e) => {
    e.q.desc(0, { addr: RAM - 16, len: 32, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "bad-indirect-table", name: "indirect table u64 wrap", build: (e) => {
    e.q.desc(0, { addr: 0xfffffffffffffff0n, len: 32, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "nested-indirect", name: "INDIRECT inside an indirect table", build: (e) => {
    const inner = e.q.indirectTable([{ addr: BUF, len: 4 }]);
    const t = e.q.indirectTable([{ addr: inner.addr, len: inner.len, flags: IND }]);
    e.q.desc(0, { addr: t.addr, len: t.len, flags: IND }); e.q.publish(0); return 0; } },
  { kind: "indirect-with-next", name: "INDIRECT | NEXT", build: (e) => {
    const t = e.q.indirectTable([{ addr: BUF, len: 4 }]);
    e.q.desc(0, { addr: t.addr, len: t.len, flags: IND | NEXT, next: 1 }); e.q.desc(1, { addr: BUF, len: 4 }); e.q.publish(0); return 0; } },
  { kind: "indirect-not-negotiated", name: "INDIRECT without VIRTIO_F_INDIRECT_DESC", opts: { indirect: false }, build: (e) => {
    e.q.addChain([{ data: [1] }], { indirect: true }); return 0; } },
];

for (const impl of ["wasm", "js"] as const) {
  describe(`chain errors (${impl})`, () => {
    for (const c of cases) {
      it(`${c.kind}: ${c.name}`, async () => {
        const e = await env(impl, c.opts);
        const head = c.build(e);
        expectKind(e, c.kind, head);
      });
    }

    it("desc-table-out-of-ram (hot path re-checks the guest-set table address)", async () => {
      const e = await env(impl);
      const out = e.mem.allocScratch(64 * 12);
      expect(e.hot.walkChain(RAM - 16 * 15, 16, 0, out, 64, true)).toBe(WALK_ERRORS["desc-table-out-of-ram"]);
      expect(e.hot.walkChain(0xfffffff0, 16, 0, out, 64, true)).toBe(WALK_ERRORS["desc-table-out-of-ram"]);
      expect(e.hot.walkChain(2 ** 32, 16, 0, out, 64, true)).toBe(WALK_ERRORS["desc-table-out-of-ram"]);
      expect(e.hot.walkChain(0, 0, 0, out, 64, true)).toBe(WALK_ERRORS["desc-table-out-of-ram"]);
      expect(e.mem.guardsIntact()).toBe(true);
    });

    it("never writes more than maxSeg records", async () => {
      const e = await env(impl);
      const out = e.mem.allocScratch(64);
      const all = new Uint8Array(e.mem.memory.buffer);
      all.fill(0xee, out, out + 64);
      e.q.addChain([1, 2, 3, 4].map((x) => ({ data: [x] })), { publish: false });
      expect(e.hot.walkChain(e.q.descAddr, SIZE, 0, out, 3, false)).toBe(WALK_ERRORS["too-many-segments"]);
      expect([...all.subarray(out + 36, out + 64)].every((b) => b === 0xee)).toBe(true);
    });

    it("accepts a chain of exactly queue-size descriptors, normal descriptors then INDIRECT, WRITE on INDIRECT ignored", async () => {
      const e = await env(impl);
      for (let i = 0; i < SIZE; i++) e.q.desc(i, { addr: BUF + i, len: 1, flags: i < SIZE - 1 ? NEXT : 0, next: i + 1 });
      e.q.publish(0);
      const ch = e.vq.pop()!;
      expect(ch.readable).toHaveLength(SIZE);
      e.vq.push(0, 0);
      const t = e.q.indirectTable([{ addr: BUF, len: 8, flags: NEXT, next: 1 }, { addr: BUF + 64, len: 16, flags: WRITE }]);
      e.q.desc(1, { addr: BUF + 100, len: 3, flags: NEXT, next: 2 });
      e.q.desc(2, { addr: t.addr, len: t.len, flags: IND | WRITE });
      e.q.publish(1);
      const ch2 = e.vq.pop()!;
      expect(ch2.readable).toEqual([{ addr: BUF + 100, len: 3 }, { addr: BUF, len: 8 }]);
      expect(ch2.writable).toEqual([{ addr: BUF + 64, len: 16 }]);
      expect(e.mem.guardsIntact()).toBe(true);
    });
  });
}

it("every ChainErrorKind has a test", () => {
  const tested = new Set<string>([...cases.map((c) => c.kind), "desc-table-out-of-ram", "avail-idx-jump"]);
  for (const k of CHAIN_ERROR_KINDS) expect(tested.has(k), k).toBe(true);
  for (const k of Object.keys(WALK_ERRORS)) expect(CHAIN_ERROR_KINDS).toContain(k);
});

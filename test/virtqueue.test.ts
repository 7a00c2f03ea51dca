import { beforeAll, describe, expect, it } from "vitest";
import { StateError } from "../src/virtio/state.js";
import { createTestMemory, type TestMemory } from "../src/memory/test-memory.js";
import { loadHotPath, referenceHotPath, type HotPath } from "../src/hotpath/hotpath.js";
import { ChainError, Virtqueue } from "../src/virtio/virtqueue.js";
import { MockQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./support/mock-driver.js";
import { readSegments, writeSegments, readU32, readU64, writeU32 } from "../src/memory/access.js";

const RAM = 4 << 20;

for (const impl of ["wasm", "js"] as const) {
  describe(`Virtqueue (${impl} hot path)`, () => {
    let mem: TestMemory;
    let hot: HotPath;
    const setup = async (size = 16) => {
      mem = createTestMemory(RAM);
      hot = impl === "wasm" ? await loadHotPath(mem) : referenceHotPath(mem);
      const q = new MockQueue(mem, { size });
      const vq = new Virtqueue(mem, hot, 0, 256);
      expect(q.attach(vq)).toBeNull();
      return { q, vq };
    };
    beforeAll(async () => { await setup(); });

    it("pops a direct chain, pushes used, reads data", async () => {
      const { q, vq } = await setup();
      expect(vq.pop()).toBeNull();
      const c = q.addChain([{ data: [1, 2, 3, 4] }, { data: [5, 6] }, { len: 8, write: true }]);
      expect(vq.pending()).toBe(1);
      const ch = vq.pop()!;
      expect(ch.head).toBe(c.head);
      expect(ch.readable).toEqual([{ addr: c.buffers[0]!.addr, len: 4 }, { addr: c.buffers[1]!.addr, len: 2 }]);
      expect(ch.writable).toEqual([{ addr: c.buffers[2]!.addr, len: 8 }]);
      expect(ch.readableBytes).toBe(6);
      expect(ch.writableBytes).toBe(8);
      expect([...readSegments(mem, ch.readable)]).toEqual([1, 2, 3, 4, 5, 6]);
      expect([...readSegments(mem, ch.readable, 5)]).toEqual([1, 2, 3, 4, 5]);
      mem.clearDirty();
      expect(writeSegments(mem, ch.writable, new Uint8Array([9, 9, 9]))).toBe(3);
      expect(mem.dirtyCovers(c.buffers[2]!.addr, c.buffers[2]!.addr + 3)).toBe(true);
      vq.push(ch.head, 3);
      expect(mem.dirtyCovers(q.usedAddr + 2, q.usedAddr + 4)).toBe(true);
      expect(mem.dirtyCovers(q.usedAddr + 4, q.usedAddr + 12)).toBe(true);
      expect(mem.badDirty).toEqual([]);
      const u = q.used();
      expect(u).toHaveLength(1);
      expect(u[0]!.id).toBe(c.head);
      expect(u[0]!.len).toBe(3);
      expect(vq.pop()).toBeNull();
      expect(mem.guardsIntact()).toBe(true);
    });

    it("pops an indirect chain when allowed, refuses it when not negotiated", async () => {
      const { q, vq } = await setup();
      const c = q.addChain([{ data: [7] }, { len: 4, write: true }], { indirect: true });
      expect(() => vq.pop()).toThrow(ChainError);
      vq.push(c.head, 0);
      vq.allowIndirect = true;
      const c2 = q.addChain([{ data: [7] }, { len: 4, write: true }], { indirect: true });
      const ch = vq.pop()!;
      expect(ch.head).toBe(c2.head);
      expect(ch.readable[0]!.addr).toBe(c2.buffers[0]!.addr);
      expect(ch.writable[0]!.len).toBe(4);
    });

    it("wraps the ring many times (u16 index wrap)", async () => {
      const { q, vq } = await setup(4);
      for (let i = 0; i < 70000; i++) {
        const c = q.addChain([{ addr: 0x100000, len: 8 }, { addr: 0x100100, len: 4, write: true }]);
        const ch = vq.pop()!;
        expect(ch.head).toBe(c.head);
        vq.push(ch.head, 4);
        const u = q.used();
        if (u.length !== 1 || u[0]!.id !== c.head) throw new Error(`iteration ${i}`);
      }
      expect(vq.usedIdx).toBe(70000 & 0xffff);
    });

    it("avail idx more than size ahead is a named error, nothing consumed", async () => {
      const { q, vq } = await setup(8);
      q.setAvailIdx(9);
      try { vq.pop(); expect.unreachable(); } catch (e) {
        expect(e).toBeInstanceOf(ChainError);
        expect((e as ChainError).kind).toBe("avail-idx-jump");
        expect((e as ChainError).head).toBe(-1);
      }
      expect(vq.lastAvailIdx).toBe(0);
    });

    it("malformed chain consumes its head and can be returned with len 0", async () => {
      const { q, vq } = await setup(8);
      q.desc(0, { addr: 0x1000, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 });
      q.publish(0);
      try { vq.pop(); expect.unreachable(); } catch (e) {
        expect((e as ChainError).kind).toBe("loop");
        expect((e as ChainError).head).toBe(0);
        vq.push((e as ChainError).head, 0);
      }
      expect(q.used()).toEqual([{ id: 0, len: 0 }]);
      expect(vq.pop()).toBeNull();
      expect(mem.guardsIntact()).toBe(true);
    });

    it("enable() validates size, alignment and rings in RAM", async () => {
      mem = createTestMemory(RAM);
      hot = await loadHotPath(mem);
      const vq = new Virtqueue(mem, hot, 1, 128);
      const ok = () => { vq.size = 128; vq.descAddr = 0x1000; vq.driverAddr = 0x2000; vq.deviceAddr = 0x3000; };
      ok(); expect(vq.enable()).toBeNull(); expect(vq.enabled).toBe(true);
      vq.reset(); expect(vq.enabled).toBe(false); expect(vq.size).toBe(128);
      ok(); vq.size = 100; expect(vq.enable()).toMatch(/power of 2/);
      ok(); vq.size = 256; expect(vq.enable()).toMatch(/power of 2/);
      ok(); vq.size = 0; expect(vq.enable()).toMatch(/power of 2/);
      ok(); vq.descAddr = 0x1008; expect(vq.enable()).toMatch(/16-byte/);
      ok(); vq.driverAddr = 0x2001; expect(vq.enable()).toMatch(/2-byte/);
      ok(); vq.deviceAddr = 0x3002; expect(vq.enable()).toMatch(/4-byte/);
      ok(); vq.descAddr = RAM - 16 * 127; expect(vq.enable()).toMatch(/descriptor table/);
      ok(); vq.driverAddr = RAM - 6 - 2 * 128 + 2; expect(vq.enable()).toMatch(/driver area/);
      ok(); vq.deviceAddr = RAM - 4; expect(vq.enable()).toMatch(/device area/);
      ok(); vq.deviceAddr = 2 ** 32 + 0x3000; expect(vq.enable()).toMatch(/device area/);
      ok(); vq.driverAddr = RAM - 6 - 2 * 128; expect(vq.enable()).toBeNull();
      expect(vq.enabled).toBe(true);
    });

    it("wantsInterrupt honours NO_INTERRUPT and EVENT_IDX", async () => {
      const { q, vq } = await setup(8);
      q.addChain([{ len: 4, write: true }]);
      vq.push(vq.pop()!.head, 4);
      expect(vq.wantsInterrupt()).toBe(true);
      q.setNoInterrupt(true);
      expect(vq.wantsInterrupt()).toBe(false);
      q.setNoInterrupt(false);
      vq.eventIdx = true;
      q.setUsedEvent(2); // interrupt when used idx passes 2 (i.e. becomes 3)
      q.used();
      q.addChain([{ len: 4, write: true }]);
      vq.push(vq.pop()!.head, 4); // used idx 2
      expect(q.availEvent()).toBe(2);
      expect(vq.wantsInterrupt()).toBe(false);
      q.used();
      q.addChain([{ len: 4, write: true }]);
      vq.push(vq.pop()!.head, 4); // used idx 3
      expect(vq.wantsInterrupt()).toBe(true);
    });

    it("saveState / restoreState round-trips through JSON", async () => {
      const { q, vq } = await setup(8);
      q.addChain([{ data: [1] }]);
      vq.push(vq.pop()!.head, 0);
      const s = JSON.parse(JSON.stringify(vq.saveState()));
      const vq2 = new Virtqueue(mem, hot, 0, 256);
      vq2.restoreState(s);
      expect(vq2.saveState()).toEqual(vq.saveState());
      q.used();
      const c = q.addChain([{ data: [2] }]);
      expect(vq2.pop()!.head).toBe(c.head);
      expect(() => vq2.restoreState({ size: "x" })).toThrow(StateError);
      expect(() => vq2.restoreState({ ...s, descAddr: RAM })).toThrow(/enabled queue must be valid/);
    });
  });
}

describe("memory access helpers", () => {
  it("bounds-check and dirty", () => {
    const mem = createTestMemory(1 << 20);
    writeU32(mem, 100, 0xdeadbeef);
    expect(readU32(mem, 100)).toBe(0xdeadbeef);
    expect(mem.dirtyCovers(100, 104)).toBe(true);
    expect(readU64(mem, 96)).toBe(0xdeadbeef00000000n);
    expect(() => readU32(mem, (1 << 20) - 2)).toThrow(RangeError);
    expect(() => readU32(mem, -1)).toThrow(RangeError);
    expect(() => readSegments(mem, [{ addr: (1 << 20) - 4, len: 8 }])).toThrow(RangeError);
    expect(() => writeSegments(mem, [{ addr: 2 ** 32, len: 8 }], new Uint8Array(8))).toThrow(RangeError);
    expect(mem.guardsIntact()).toBe(true);
  });
});

void VIRTQ_DESC_F_WRITE;

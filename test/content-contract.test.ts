// The content contract (README "Content contract"): for each path, what the guest may read afterwards,
// what the host and a snapshot see, and what the driver may assume. One test per table row, named as there.
import { describe, expect, it } from "vitest";
import { BalloonDevice } from "../src/balloon/device.js";
import { allBytes, bits, le32, makeBalloon, PAGE, PFN_BASE, type Harness, type HarnessOptions } from "./balloon-harness.js";

const POISON = 0xaaaaaaaa;
const P = PFN_BASE;

type ContractHarness = Harness & { lastBitmap?: number };

async function balloon(opts: HarnessOptions): Promise<ContractHarness> {
  const h: ContractHarness = await makeBalloon({ poisonVal: POISON, ...opts });
  expect(h.refusal).toBeNull(); // precondition: the features are negotiated
  return h;
}

/** Inflate P, P+1 (and bit 7's bitmap when negotiated); returns the used length and the bitmap byte. */
function inflate(h: ContractHarness, bitmap: boolean): number {
  const c = h.send("inflate", [{ data: le32([P, P + 1]) }, ...(bitmap ? [{ len: 1, write: true, fill: 0xee }] : [])]);
  if (bitmap) h.lastBitmap = h.mem.bytes()[c.buffers[1]!.addr]!;
  return h.mq("inflate").used()[0]!.len;
}

/** What a snapshot holds for page `pfn`: the device's tracking bit and the bytes of guest RAM. */
function snapshotView(h: Harness, pfn: number): { inflated: boolean; page: Uint8Array } {
  const s = h.dev.saveState();
  return { inflated: ((s.inflatedBitmap[pfn >> 3]! >> (pfn & 7)) & 1) === 1, page: h.page(pfn) };
}

describe("content contract", () => {
  it("contract: inflate, no bit 7, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits() });
    expect(inflate(h, false)).toBe(0); // the driver is told nothing
    expect(allBytes(h.page(P), 0)).toBe(true); // zeroed: v86 snapshots leave it out
    expect(snapshotView(h, P)).toEqual({ inflated: true, page: new Uint8Array(PAGE) });
  });

  it("contract: inflate, no bit 7, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_POISON") });
    expect(inflate(h, false)).toBe(0);
    expect(allBytes(h.page(P), 0xaa)).toBe(true); // only poison_val may be written
    expect(h.host.counters().bytesPoisoned).toBe(2 * PAGE);
  });

  it("contract: inflate, bit 7, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("DEVICE_INIT_ON_INFLATE") });
    expect(inflate(h, true)).toBe(1); // ceil(2/8) bytes of bitmap
    expect(h.lastBitmap).toBe(0b11); // padding bits 0
    expect(allBytes(h.page(P), 0)).toBe(true);
    expect(allBytes(h.page(P + 1), 0)).toBe(true); // bit set => page reads zero: the driver may skip zeroing
  });

  it("contract: inflate, bit 7, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("DEVICE_INIT_ON_INFLATE", "PAGE_POISON") });
    expect(inflate(h, true)).toBe(1);
    expect(h.lastBitmap).toBe(0b11);
    expect(allBytes(h.page(P), 0xaa) && allBytes(h.page(P + 1), 0xaa)).toBe(true); // bit set => poison_val's byte
  });

  it("contract: deflate, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits() });
    inflate(h, false);
    h.send("deflate", [{ data: le32([P]) }]);
    expect(h.mq("deflate").used()[0]!.len).toBe(0);
    expect(allBytes(h.page(P), 0)).toBe(true); // the device writes nothing on deflate: the page keeps its zeros
    expect(snapshotView(h, P).inflated).toBe(false);
  });

  it("contract: deflate, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_POISON") });
    inflate(h, false);
    h.send("deflate", [{ data: le32([P]) }]);
    expect(allBytes(h.page(P), 0xaa)).toBe(true); // keeps the poison written at inflate
    expect(h.dev.inflatedPages).toBe(1);
  });

  const report = (h: Harness) => {
    h.send("reporting", [{ addr: P * PAGE, len: 2 * PAGE, write: true }]);
    return h.mq("reporting").used()[0]!.len;
  };

  it("contract: report, no bit 6, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_REPORTING") });
    expect(report(h)).toBe(0); // the driver may assume nothing about the pages
    expect(allBytes(h.page(P), 0)).toBe(true); // zeroed (zeroFreedPages): smaller snapshots
  });

  it("contract: report, no bit 6, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_REPORTING", "PAGE_POISON") });
    expect(report(h)).toBe(0);
    expect(allBytes(h.page(P), 0xaa)).toBe(true); // never zero: only poison_val (or nothing) may be written
  });

  it("contract: report, bit 6, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED") });
    expect(report(h)).toBe(2 * PAGE); // the driver may treat the covered bytes as zero
    expect(allBytes(h.page(P), 0) && allBytes(h.page(P + 1), 0)).toBe(true);
  });

  it("contract: report, bit 6, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("PAGE_REPORTING", "DEVICE_INIT_REPORTED", "PAGE_POISON") });
    expect(report(h)).toBe(2 * PAGE);
    expect(allBytes(h.page(P + 1), 0xaa)).toBe(true);
  });

  const hint = (h: Harness) => {
    const id = h.host.startHinting()!;
    h.send("free-page", [{ data: le32([id]) }]);
    h.send("free-page", [{ addr: P * PAGE, len: PAGE, write: true }]);
    return h.mq("free-page").used().map((u) => u.len);
  };

  it("contract: hint, no PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("FREE_PAGE_HINT") });
    expect(hint(h)).toEqual([0, 0]);
    expect(h.host.hinting.status).toBe("started"); // precondition: the cycle took the hint
    expect(allBytes(h.page(P), 0)).toBe(true); // undefined until the guest writes it; this device zeroes it
  });

  it("contract: hint, PAGE_POISON", async () => {
    const h = await balloon({ accept: bits("FREE_PAGE_HINT", "PAGE_POISON") });
    expect(hint(h)).toEqual([0, 0]);
    expect(allBytes(h.page(P), 0xaa)).toBe(true);
  });

  it("contract: snapshot / restore", async () => {
    const h = await balloon({ accept: bits("DEVICE_INIT_ON_INFLATE") });
    inflate(h, true);
    h.paint(P + 5, 1, 0x33); // an ordinary guest page
    const saved = h.dev.saveState();
    const ram = h.mem.bytes().slice();
    h.send("deflate", [{ data: le32([P, P + 1]) }]); // changes after the snapshot ...
    h.paint(P + 5, 1, 0x44);
    h.mem.bytes().set(ram); // ... v86 restores RAM, the device restores its part
    const fresh = new BalloonDevice(h.mem, h.hot, { clock: h.clock });
    fresh.attach(h.transport);
    fresh.restoreState(saved, h.vqs);
    expect(fresh.inflatedPages).toBe(2);
    expect(allBytes(h.page(P), 0)).toBe(true); // inflated pages read as they were (zero)
    expect(allBytes(h.page(P + 5), 0x33)).toBe(true); // guest pages read as they were
    h.mq("deflate").addChain([{ data: le32([P, P + 1]) }]);
    fresh.notify(h.index("deflate"));
    expect(fresh.counters().diagnosticsByKind["deflate-not-inflated"]).toBeUndefined(); // the driver may deflate what it had
    fresh.dispose();
  });
});

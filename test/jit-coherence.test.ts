/**
 * JIT coherence of the hot path's writes in a real v86: guest code that v86 has compiled must not keep
 * running after the device rewrote its page. A boot sector copies a routine to page 0x10 and calls it in
 * a loop, counting the calls; the routine sets a marker byte. Once the loop is hot (compiled), the
 * device fills pages 0xf-0x12 with RETF through the inflate path (`fillPfns`, one coalesced run) and the marker is cleared: the
 * routine now returns at once, so the marker must stay clear while the loop goes on. The same test with
 * the invalidation left out (a no-op `dirty` import) must see the stale routine set the marker again:
 * that proves the loop was compiled, so the first case shows the invalidation at work.
 */
import { afterEach, expect, test } from "vitest";
import { V86 } from "v86";
import { loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { V86Adapter } from "../src/v86/adapter.js";
import { loadHotPath } from "../src/hotpath/hotpath.js";
import { until } from "../src/until.js";

const ROUTINE_PAGE = 0x10; // the routine runs at 0x1000:0000 = physical 0x10000
const MARKER = 0x600;
const COUNTER = 0x700;
const PFN_LIST = 0x20000;
const RETF = 0xcb;

/** A 1.44 MB floppy whose boot sector copies `routine` to 0x1000:0 and far-calls it forever. */
function bootFloppy(): Uint8Array {
  // prettier-ignore
  const code = [
    0xfa,                         // 7c00 cli
    0x31, 0xc0,                   // 7c01 xor ax, ax
    0x8e, 0xd8,                   // 7c03 mov ds, ax
    0xb8, 0x00, 0x10,             // 7c05 mov ax, 0x1000
    0x8e, 0xc0,                   // 7c08 mov es, ax
    0xbe, 0x22, 0x7c,             // 7c0a mov si, routine (0x7c22)
    0x31, 0xff,                   // 7c0d xor di, di
    0xb9, 0x06, 0x00,             // 7c0f mov cx, 6
    0xfc,                         // 7c12 cld
    0xf3, 0xa4,                   // 7c13 rep movsb
    0x9a, 0x00, 0x00, 0x00, 0x10, // 7c15 loop: call far 0x1000:0000
    0x66, 0x83, 0x06, 0x00, 0x07, 0x01, // 7c1a add dword [0x700], 1
    0xeb, 0xf3,                   // 7c20 jmp loop
    0xc6, 0x06, 0x00, 0x06, 0x01, // 7c22 routine: mov byte [0x600], 1
    RETF,                         // 7c27 retf
  ];
  const img = new Uint8Array(1474560);
  img.set(code, 0);
  img[510] = 0x55;
  img[511] = 0xaa;
  return img;
}

let emulator: V86 | undefined;
afterEach(async () => {
  await emulator?.destroy();
  emulator = undefined;
});

async function staleRoutineRan(invalidate: boolean): Promise<boolean> {
  const images = loadGuestImages();
  emulator = new V86({
    wasm_path: v86WasmPath(),
    memory_size: 16 << 20,
    vga_memory_size: 2 << 20,
    bios: { buffer: images.bios },
    vga_bios: { buffer: images.vgaBios },
    fda: { buffer: bootFloppy().buffer },
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
  } as ConstructorParameters<typeof V86>[0]);
  const e = emulator;
  const adapter = await new Promise<V86Adapter>((resolve) => e.add_listener("emulator-ready", () => resolve(new V86Adapter(e))));
  const mem = adapter.memory;
  // The device's wiring (src/host/attach.ts), or the same without the JIT being told.
  const hot = await loadHotPath(mem, { dirtyImport: invalidate ? mem.dirty : () => {} });
  const view = () => new DataView(mem.memory.buffer, mem.base, mem.size);
  const calls = () => view().getUint32(COUNTER, true);

  // Hot enough that v86 has compiled the loop and the routine (its threshold is 200,000 block entries).
  await until(() => calls() >= 3_000_000, "the boot-sector loop to run hot", 120_000);
  expect(view().getUint8(MARKER)).toBe(1);

  // As Linux sends them: a descending run, the routine's page inside it (one invalidation for the stretch).
  const pfns = [ROUTINE_PAGE + 2, ROUTINE_PAGE + 1, ROUTINE_PAGE, ROUTINE_PAGE - 1];
  pfns.forEach((pfn, i) => view().setUint32(PFN_LIST + 4 * i, pfn, true));
  const r = hot.fillPfns(PFN_LIST, pfns.length, RETF, 0, 0);
  expect(r).toMatchObject({ filled: 4, pagesWritten: 4, runs: 1 });
  expect(mem.bytes()[ROUTINE_PAGE * 4096]).toBe(RETF);
  view().setUint8(MARKER, 0);
  const after = calls();
  await until(() => calls() - after >= 1_000_000, "the loop to go on after the fill", 120_000);
  return view().getUint8(MARKER) === 1;
}

test("code in a page the device fills is not run stale: the inflate path invalidates v86's JIT", async () => {
  expect(await staleRoutineRan(true)).toBe(false);
}, 240_000);

test("control: without the invalidation the compiled routine keeps running (the loop was compiled)", async () => {
  expect(await staleRoutineRan(false)).toBe(true);
}, 240_000);

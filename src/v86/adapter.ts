/**
 * The one module that touches v86's internals (`emulator.v86.cpu`). Everything else sees a
 * `GuestMemory` and a `PciHost`. The property names used here survive v86's minified build
 * (checked against v86 0.5.462); class names do not, so nothing here relies on them.
 */
import type { V86 } from "v86";
import type { GuestMemory } from "../memory/guest-memory.js";
import type { PciDeviceRegistration, PciHost } from "../virtio/pci-host.js";

type Read = () => number;
type Write = (value: number) => void;

/** The slice of v86's CPU object this project relies on. */
interface V86Cpu {
  io: {
    register_read(port: number, ctx: object, r8?: Read, r16?: Read, r32?: Read): void;
    register_write(port: number, ctx: object, w8?: Write, w16?: Write, w32?: Write): void;
  };
  devices: {
    pci: {
      register_device(device: { pci_id: number; pci_space: number[]; pci_bars: { size: number }[]; name: string }): Int32Array;
      raise_irq(pciId: number): void;
      lower_irq(pciId: number): void;
    };
  };
  wasm_memory: WebAssembly.Memory;
  mem8: Uint8Array;
  memory_size: Uint32Array;
  /** v86.wasm export: invalidate compiled code for guest-physical [start, end). */
  jit_dirty_cache(start: number, end: number): void;
  wm: { exports: { v86_malloc(size: number): number } };
  get_state(): unknown[];
  set_state(state: unknown[]): void;
}

/** v86's own balloon (option `virtio_balloon: true`): counts PFNs only. A benchmark baseline. */
interface V86BuiltinBalloon {
  num_pages: number;
  actual: number;
  Inflate(pages: number): void;
  Deflate(pages: number): void;
}

/** v86 saves objects that have `get_state()`; plain literals are rejected by its serialiser. */
class SavedSlot {
  constructor(private readonly value: unknown[]) {}
  get_state(): unknown[] {
    return this.value;
  }
}

/** v86's CPU state array has fixed device slots; 100 is unused by v86 0.5.x. */
const STATE_SLOT = 100;

export class V86Adapter implements PciHost {
  private readonly cpu: V86Cpu;
  readonly memory: GuestMemory;

  /** Call from the `emulator-ready` listener: devices exist, nothing has run yet. */
  constructor(readonly emulator: V86) {
    const cpu = (emulator as unknown as { v86?: { cpu?: V86Cpu } }).v86?.cpu;
    if (!cpu?.io || !cpu.devices?.pci || !cpu.wasm_memory) {
      throw new Error("v86 internals not found: attach the balloon from the 'emulator-ready' event (v86 0.5.x)");
    }
    this.cpu = cpu;
    this.memory = this.makeGuestMemory();
  }

  private makeGuestMemory(): GuestMemory {
    const cpu = this.cpu;
    const base = cpu.mem8.byteOffset;
    const size = cpu.memory_size[0];
    let view = new Uint8Array(cpu.wasm_memory.buffer, base, size);
    return {
      memory: cpu.wasm_memory,
      base,
      size,
      bytes() {
        // The view detaches if v86's memory ever grows; rebuild it then.
        if (view.buffer !== cpu.wasm_memory.buffer) view = new Uint8Array(cpu.wasm_memory.buffer, base, size);
        return view;
      },
      dirty: cpu.jit_dirty_cache,
      allocScratch: (bytes: number) => {
        const p = cpu.wm.exports.v86_malloc(bytes);
        if (!p) throw new Error(`v86_malloc(${bytes}) failed`);
        return p;
      },
    };
  }

  registerDevice(dev: PciDeviceRegistration): void {
    const { io } = this.cpu;
    // Handlers first: v86 snapshots the BAR's port entries at register_device and moves them with the BAR.
    for (let i = 0; i < dev.bar.size; i++) {
      io.register_read(dev.bar.port + i, dev.io, () => dev.io.read(i, 1), () => dev.io.read(i, 2), () => dev.io.read(i, 4));
      io.register_write(dev.bar.port + i, dev.io, (v) => dev.io.write(i, 1, v), (v) => dev.io.write(i, 2, v), (v) => dev.io.write(i, 4, v));
    }
    this.cpu.devices.pci.register_device({
      pci_id: dev.pciId,
      pci_space: Array.from(dev.configSpace),
      pci_bars: [{ size: dev.bar.size }],
      name: dev.name,
    });
  }

  raiseIrq(pciId: number): void {
    this.cpu.devices.pci.raise_irq(pciId);
  }

  lowerIrq(pciId: number): void {
    this.cpu.devices.pci.lower_irq(pciId);
  }

  /**
   * Adds our state to v86's `save_state`/`restore_state` by wrapping the CPU's own get/set. On restore,
   * `prepare` parses and checks our part BEFORE v86 touches anything (it throws to refuse the whole state);
   * the commit it returns runs after v86 restored its own devices.
   */
  hookState(save: () => unknown[], prepare: (state: unknown[] | null) => () => void): void {
    const cpu = this.cpu;
    const getState = cpu.get_state.bind(cpu);
    const setState = cpu.set_state.bind(cpu);
    cpu.get_state = () => {
      const state = getState();
      state[STATE_SLOT] = new SavedSlot(save());
      return state;
    };
    cpu.set_state = (state: unknown[]) => {
      const ours = state[STATE_SLOT];
      const commit = prepare(Array.isArray(ours) ? ours : null);
      setState(state);
      commit();
    };
  }

  /** v86's built-in balloon, when the emulator was created with `virtio_balloon: true`. */
  builtinBalloon(): { setTarget(pages: number): void; readonly actual: number } | null {
    const b = (this.cpu.devices as { virtio_balloon?: V86BuiltinBalloon }).virtio_balloon;
    if (!b) return null;
    return {
      setTarget: (pages) => (pages >= b.num_pages ? b.Inflate(pages - b.num_pages) : b.Deflate(b.num_pages - pages)),
      get actual() {
        return b.actual;
      },
    };
  }

  /** Guest instructions retired (u32, wraps). */
  instructionCounter(): number {
    return this.emulator.get_instruction_counter();
  }
}

/** v86 0.5.x state file: header magic, version, and zstd's frame magic (v86 can save compressed states). */
const V86_STATE_MAGIC = 0x86768676;
const V86_STATE_VERSION = 6;
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Our slot of a v86 state file, read without an emulator (for checking a state before it is restored):
 * `{ slot }` (null when the state has no balloon), `"compressed"` for a zstd state (only v86 can
 * decompress it; its restore is still checked), or a string saying why the file is not a v86 state.
 */
export function readStateSlot(file: ArrayBuffer): { slot: unknown[] | null } | "compressed" | string {
  if (file.byteLength < 16) return `${file.byteLength} bytes: too short for a v86 state`;
  const dv = new DataView(file);
  if (dv.getUint32(0, true) === ZSTD_MAGIC) return "compressed";
  if (dv.getUint32(0, true) !== V86_STATE_MAGIC) return "not a v86 state (bad magic)";
  if (dv.getInt32(4, true) !== V86_STATE_VERSION) return `v86 state version ${dv.getInt32(4, true)}, this v86 reads ${V86_STATE_VERSION}`;
  if (dv.getUint32(8, true) !== file.byteLength) return "truncated v86 state (length does not match its header)";
  const infoLen = dv.getInt32(12, true);
  if (infoLen < 0 || 16 + infoLen > file.byteLength) return "bad v86 state info block length";
  let info: { state?: unknown; buffer_infos?: unknown };
  try {
    info = JSON.parse(new TextDecoder().decode(new Uint8Array(file, 16, infoLen))) as typeof info;
  } catch {
    return "v86 state info block is not JSON";
  }
  const state = info.state;
  const buffers = info.buffer_infos;
  if (!Array.isArray(state) || !Array.isArray(buffers)) return "v86 state info block has no state";
  const ours = state[STATE_SLOT] as unknown;
  if (!Array.isArray(ours)) return { slot: null };
  const start = (16 + infoLen + 3) & ~3;
  // Typed arrays are saved as { __state_type__, buffer_id }: put their bytes back.
  const slot = ours.map((x: unknown) => {
    const id = (x as { buffer_id?: unknown } | null)?.buffer_id;
    const b = typeof id === "number" ? (buffers[id] as { offset?: unknown; length?: unknown } | undefined) : undefined;
    if (!b || typeof b.offset !== "number" || typeof b.length !== "number") return x;
    const at = start + b.offset;
    return at >= start && at + b.length <= file.byteLength ? new Uint8Array(file.slice(at, at + b.length)) : x;
  });
  return { slot };
}

/**
 * Makes a stopping emulator stop now. v86's `stop()` (and so `destroy()`) resolves at the emulator's next
 * tick, which an idle guest may have scheduled seconds ahead (its next timer): until then the emulator,
 * its guest RAM included, stays reachable. A tick at once sees the stop request and ends the loop.
 */
export function stopPromptly(emulator: V86): void {
  const main = (emulator as unknown as { v86?: { stopping?: boolean; next_tick?(t: number): void } }).v86;
  if (main?.stopping && typeof main.next_tick === "function") main.next_tick(0);
}

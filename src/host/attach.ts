/**
 * Plugs a balloon into a v86 instance: v86 adapter -> hot path -> balloon device -> virtio-pci
 * transport -> host API, plus save/restore through v86's own snapshots.
 * Call from `VMOptions.onReady` (v86's devices exist, the guest has not run).
 */
import type { V86 } from "v86";
import { startVM, type GuestImages, type V86Wasm, type VM, type VMOptions } from "../vm.js";
import { V86Adapter } from "../v86/adapter.js";
import { loadHotPath, referenceHotPath } from "../hotpath/hotpath.js";
import { BalloonDevice, type BalloonOptions } from "../balloon/device.js";
import { VirtioPciTransport } from "../virtio/pci-transport.js";
import { BalloonHost } from "./balloon-host.js";
import type { FloorOption } from "./floor.js";
import { commitBalloonState, liveLimits, parseBalloonSlot, saveBalloonSlot } from "./snapshot.js";

export interface AttachOptions extends BalloonOptions {
  /** PCI slot (device number); 0x0e is free in v86's default machine. */
  pciDevice?: number;
  /** "wasm" (default): the AssemblyScript hot path; "js": its reference implementation. */
  hotPath?: "wasm" | "js";
  /** What the balloon always leaves to the guest (host API floor): "auto" (default), "off" or bytes. */
  floor?: FloorOption;
}

export interface AttachedBalloon {
  host: BalloonHost;
  device: BalloonDevice;
  transport: VirtioPciTransport;
  adapter: V86Adapter;
}

/** Initial I/O port of the BAR; SeaBIOS moves it, v86 moves our handlers with it. */
const INITIAL_PORT = 0x9000;

export async function attachBalloon(emulator: V86, opts: AttachOptions = {}): Promise<AttachedBalloon> {
  const adapter = new V86Adapter(emulator);
  const mem = adapter.memory;
  const hot = opts.hotPath === "js" ? referenceHotPath(mem) : await loadHotPath(mem, { dirtyImport: mem.dirty });
  const device = new BalloonDevice(mem, hot, opts);
  const transport = new VirtioPciTransport(adapter, mem, hot, device, {
    pciId: (opts.pciDevice ?? 0x0e) << 3,
    port: INITIAL_PORT,
    name: "virtio-balloon",
    onDiagnostic: (d) => device.diagnostics.emit(d.kind, d.message, { source: "transport", ...d.detail }),
  });
  adapter.hookState(
    () => saveBalloonSlot(transport, device),
    (slot) => {
      const parsed = parseBalloonSlot(slot, liveLimits(transport, device));
      return () => commitBalloonState(parsed, transport, device);
    },
  );
  return { host: new BalloonHost(device, { floor: opts.floor }), device, transport, adapter };
}

export interface BalloonVMOptions extends VMOptions {
  balloon?: AttachOptions;
  /** Called once the balloon is plugged in, before the guest runs: to watch events from boot on. */
  onAttached?: (balloon: AttachedBalloon) => void;
}

/**
 * Boots (or restores) the guest with the balloon plugged in at `onReady`; destroying the VM disposes the
 * device (its timers would keep the VM, guest RAM included, alive). The Node and browser starters' core.
 */
export async function startBalloonVM(images: GuestImages, wasm: V86Wasm, opts: BalloonVMOptions): Promise<AttachedBalloon & { vm: VM }> {
  let attached: AttachedBalloon | undefined;
  const vm = await startVM(images, wasm, {
    ...opts,
    onReady: async (emulator, vm) => {
      attached = await attachBalloon(emulator, opts.balloon);
      vm.onDestroy(() => attached!.device.dispose());
      opts.onAttached?.(attached);
      await opts.onReady?.(emulator, vm);
    },
  });
  return { vm, ...attached! };
}

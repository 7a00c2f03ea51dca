/** Node: boot the guest with our balloon plugged in. */
import { startVM, type VM, type VMOptions } from "../vm.js";
import { attachBalloon, type AttachedBalloon, type AttachOptions } from "../host/attach.js";
import { loadGuestImages, v86WasmPath } from "./vm-node.js";

export interface NodeBalloonVMOptions extends VMOptions {
  balloon?: AttachOptions;
  /** Your own kernel / initramfs instead of the committed ones. */
  kernel?: string;
  initrd?: string;
  /** A directory laid out like public/guest/ (manifest.json and images) instead of the committed one. */
  imageDir?: string;
  /** Called once the balloon is plugged in, before the guest runs: to watch events from boot on. */
  onAttached?: (balloon: AttachedBalloon) => void;
}

export interface BalloonVM extends AttachedBalloon {
  vm: VM;
}

export async function startNodeBalloonVM(opts: NodeBalloonVMOptions = {}): Promise<BalloonVM> {
  let attached: AttachedBalloon | undefined;
  const vm = await startVM(loadGuestImages({ dir: opts.imageDir, kernel: opts.kernel, initrd: opts.initrd }), v86WasmPath(), {
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

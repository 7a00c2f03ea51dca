/** Node: boot the guest with our balloon plugged in. */
import type { VM } from "../vm.js";
import { startBalloonVM, type AttachedBalloon, type BalloonVMOptions } from "../host/attach.js";
import { loadGuestImages, v86WasmPath } from "./vm-node.js";

export interface NodeBalloonVMOptions extends BalloonVMOptions {
  /** Your own kernel / initramfs instead of the committed ones. */
  kernel?: string;
  initrd?: string;
  /** A directory laid out like public/guest/ (manifest.json and images) instead of the committed one. */
  imageDir?: string;
}

export interface BalloonVM extends AttachedBalloon {
  vm: VM;
}

export function startNodeBalloonVM(opts: NodeBalloonVMOptions = {}): Promise<BalloonVM> {
  return startBalloonVM(loadGuestImages({ dir: opts.imageDir, kernel: opts.kernel, initrd: opts.initrd }), v86WasmPath(), opts);
}

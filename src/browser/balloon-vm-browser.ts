/** Browser: fetch the images and boot the guest with our balloon plugged in. */
import { startVM, type VM, type VMOptions } from "../vm.js";
import { attachBalloon, type AttachedBalloon, type AttachOptions } from "../host/attach.js";
import { compileShared, fetchGuestImages, v86WasmUrl, type ImageUrls, type LoadProgress } from "./vm-browser.js";

export interface BrowserBalloonVMOptions extends VMOptions {
  balloon?: AttachOptions;
  images?: ImageUrls;
  onProgress?: LoadProgress;
  /** Called once the balloon is plugged in, before the guest runs: to watch events from boot on. */
  onAttached?: (balloon: AttachedBalloon) => void;
}

export interface BrowserBalloonVM extends AttachedBalloon {
  vm: VM;
  /** Same as `host`: the balloon's host API. */
  balloon: AttachedBalloon["host"];
}

export async function startBrowserBalloonVM(opts: BrowserBalloonVMOptions = {}): Promise<BrowserBalloonVM> {
  const images = await fetchGuestImages(opts.images, opts.onProgress, { boot: !opts.initialState });
  let attached: AttachedBalloon | undefined;
  const vm = await startVM(images, () => compileShared(v86WasmUrl()), {
    ...opts,
    onReady: async (emulator, vm) => {
      attached = await attachBalloon(emulator, opts.balloon);
      vm.onDestroy(() => attached!.device.dispose());
      opts.onAttached?.(attached);
      await opts.onReady?.(emulator, vm);
    },
  });
  return { vm, ...attached!, balloon: attached!.host };
}

/** Browser: fetch the images and boot the guest with our balloon plugged in. */
import { startVM, type VM, type VMOptions } from "../vm.js";
import { attachBalloon, type AttachedBalloon, type AttachOptions } from "../host/attach.js";
import { compileShared, fetchGuestImages, v86WasmUrl, type ImageUrls, type LoadProgress } from "./vm-browser.js";

export interface BrowserBalloonVMOptions extends VMOptions {
  balloon?: AttachOptions;
  images?: ImageUrls;
  onProgress?: LoadProgress;
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
    onReady: async (emulator) => {
      attached = await attachBalloon(emulator, opts.balloon);
      await opts.onReady?.(emulator);
    },
  });
  return { vm, ...attached!, balloon: attached!.host };
}

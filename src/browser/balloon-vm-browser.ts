/** Browser: fetch the images and boot the guest with our balloon plugged in. */
import type { VM } from "../vm.js";
import { startBalloonVM, type AttachedBalloon, type BalloonVMOptions } from "../host/attach.js";
import { compileShared, fetchGuestImages, v86WasmUrl, type ImageUrls, type LoadProgress } from "./vm-browser.js";

export interface BrowserBalloonVMOptions extends BalloonVMOptions {
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
  const started = await startBalloonVM(images, () => compileShared(v86WasmUrl()), opts);
  return { ...started, balloon: started.host };
}

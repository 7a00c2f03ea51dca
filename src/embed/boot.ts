/**
 * Boots the guest in the page, with the balloon when the browser VM module provides it.
 * Shared by the demo page and the embeddable element.
 */
import { fetchGuestImages, v86WasmUrl, type ImageUrls, type LoadProgress } from "../browser/vm-browser.js";
import { startVM, type VM } from "../vm.js";
import type { BalloonLike } from "./balloon-types.js";
import { FEATURES, type FeatureName } from "./features.js";

export type { ImageUrls, LoadProgress };

export interface BootOptions {
  memoryMiB?: number;
  /** Balloon features the host offers (default: the device's defaults). */
  features?: readonly FeatureName[];
  images?: ImageUrls;
  cmdlineExtra?: string;
  bootTimeoutMs?: number;
  onSerial?: (text: string) => void;
  onProgress?: LoadProgress;
}

export interface Booted {
  vm: VM;
  /** null when this build has no balloon in the browser VM. */
  balloon: BalloonLike | null;
}

/** Thrown for problems the page should explain rather than just print. */
export class LoadError extends Error {
  constructor(
    readonly kind: "webassembly" | "file" | "boot",
    message: string,
  ) {
    super(message);
  }
}

/** Throws a LoadError when this browser cannot run v86 (no WebAssembly or no shared memory ops). */
export function checkWebAssembly(): void {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    throw new LoadError("webassembly", "This browser has no WebAssembly support (or it is disabled); the emulator needs it.");
  }
  try {
    // The smallest valid module: magic + version.
    new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  } catch (e) {
    throw new LoadError("webassembly", `WebAssembly is present but cannot compile modules: ${(e as Error).message}`);
  }
}

type BalloonModule = {
  startBrowserBalloonVM(opts: Record<string, unknown>): Promise<{ vm: VM; balloon: BalloonLike }>;
};

// The balloon-enabled browser VM, when this tree has it (resolved at build time).
const balloonModules = import.meta.glob<BalloonModule>("../browser/balloon-vm-browser.ts");

/** BalloonOptions for the device: each feature offered or not (by spec name), stats every second. */
function balloonOptions(features: readonly FeatureName[] | undefined): Record<string, unknown> {
  const opts: Record<string, unknown> = { statsIntervalSeconds: 1 };
  if (features) {
    const offer: Record<string, boolean> = {};
    for (const f of FEATURES) offer[f.spec] = features.includes(f.name);
    opts.features = offer;
  }
  return opts;
}

export function hasBalloon(): boolean {
  return Object.keys(balloonModules).length > 0;
}

export async function bootGuest(opts: BootOptions = {}): Promise<Booted> {
  checkWebAssembly();
  const loader = Object.values(balloonModules)[0];
  const classify = (e: unknown): never => {
    if (e instanceof LoadError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    if (/could not load|manifest|bytes, the manifest|HTTP \d/.test(msg)) throw new LoadError("file", msg);
    if (/WebAssembly|wasm/i.test(msg)) throw new LoadError("webassembly", msg);
    throw new LoadError("boot", msg);
  };
  if (loader) {
    const mod = await loader().catch(classify);
    return mod
      .startBrowserBalloonVM({
        memoryMiB: opts.memoryMiB,
        balloon: balloonOptions(opts.features),
        images: opts.images,
        cmdlineExtra: opts.cmdlineExtra,
        onSerial: opts.onSerial,
        onProgress: opts.onProgress,
        bootTimeoutMs: opts.bootTimeoutMs,
      })
      .catch(classify);
  }
  const images = await fetchGuestImages(opts.images, opts.onProgress).catch(classify);
  const vm = await startVM(images, v86WasmUrl, {
    memoryMiB: opts.memoryMiB,
    cmdlineExtra: opts.cmdlineExtra,
    onSerial: opts.onSerial,
    bootTimeoutMs: opts.bootTimeoutMs,
  }).catch(classify);
  return { vm, balloon: null };
}

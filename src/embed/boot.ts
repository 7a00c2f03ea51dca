/**
 * Boots the guest in the page, with the balloon when the browser VM module provides it.
 * Shared by the demo page and the embeddable element.
 */
import { startBrowserBalloonVM } from "../browser/balloon-vm-browser.js";
import type { AttachOptions } from "../host/attach.js";
import type { FloorOption } from "../host/floor.js";
import type { ImageUrls, LoadProgress } from "../browser/vm-browser.js";
import type { VM } from "../vm.js";
import type { BalloonLike } from "./balloon-types.js";
import { FEATURES, type FeatureName } from "./features.js";

export type { ImageUrls, LoadProgress };

export interface BootOptions {
  memoryMiB?: number;
  /** Balloon features the host offers (default: the device's defaults). */
  features?: readonly FeatureName[];
  /** Memory the balloon always leaves to the guest (host API floor, default "auto"). */
  floor?: FloorOption;
  images?: ImageUrls;
  cmdlineExtra?: string;
  bootTimeoutMs?: number;
  onSerial?: (text: string) => void;
  onProgress?: LoadProgress;
}

export interface Booted {
  vm: VM;
  balloon: BalloonLike;
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

/** BalloonOptions for the device: each feature offered or not (by spec name), stats every second. */
function balloonOptions(features: readonly FeatureName[] | undefined, floor: FloorOption | undefined): AttachOptions {
  const opts: AttachOptions = { statsIntervalSeconds: 1, floor };
  if (features) {
    const offer: NonNullable<AttachOptions["features"]> = {};
    for (const f of FEATURES) offer[f.spec as keyof typeof offer] = features.includes(f.name);
    opts.features = offer;
  }
  return opts;
}

/** True: this build boots the guest with the balloon device. */
export function hasBalloon(): boolean {
  return true;
}

/**
 * Smallest guest RAM that boots: below ~65 MiB v86 throws while copying the initramfs into memory
 * (RangeError in its kernel loader) and never becomes ready.
 */
export const MIN_MEMORY_MIB = 72;
/** The guest kernel has no HIGHMEM. */
export const MAX_MEMORY_MIB = 890;

export async function bootGuest(opts: BootOptions = {}): Promise<Booted> {
  checkWebAssembly();
  const mem = opts.memoryMiB ?? 128;
  if (!Number.isInteger(mem) || mem < MIN_MEMORY_MIB || mem > MAX_MEMORY_MIB) {
    throw new LoadError("boot", `guest RAM must be a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} (got ${opts.memoryMiB})`);
  }
  const classify = (e: unknown): never => {
    if (e instanceof LoadError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    if (/could not load|manifest|bytes, the manifest|HTTP \d|cannot fetch/.test(msg)) throw new LoadError("file", msg);
    if (/WebAssembly|wasm/i.test(msg)) throw new LoadError("webassembly", msg);
    throw new LoadError("boot", msg);
  };
  const { vm, balloon } = await startBrowserBalloonVM({
    memoryMiB: opts.memoryMiB,
    balloon: balloonOptions(opts.features, opts.floor),
    images: opts.images,
    cmdlineExtra: opts.cmdlineExtra,
    onSerial: opts.onSerial,
    onProgress: opts.onProgress,
    bootTimeoutMs: opts.bootTimeoutMs,
  }).catch(classify);
  return { vm, balloon };
}

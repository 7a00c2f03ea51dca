/**
 * Boots the guest in the page, with the balloon when the browser VM module provides it.
 * Shared by the demo page and the embeddable element.
 */
import type { FloorOption } from "../host/floor.js";
import type { AttachOptions } from "../host/attach.js";
import type { ImageUrls, LoadProgress } from "../browser/vm-browser.js";
import type { VM } from "../vm.js";
import type { BalloonLike } from "./balloon-types.js";
import { fetchManifest, fetchShared, prefetch } from "../browser/vm-browser.js";
import { checkBalloonSnapshot, StateError } from "../host/snapshot.js";
import { checkStateMatches, decodeStateFile, manifestSha256, StateFileError, type StateHeader } from "../state-file.js";
import { DEFAULT_MEMORY_MIB, featureOffer, MAX_MEMORY_MIB, MIN_MEMORY_MIB, type FeatureName } from "../vocabulary.js";

export type { ImageUrls, LoadProgress };

/** A saved state: its URL, its bytes, or a File / Blob (the demo's "Load from file"). */
export type StateSource = string | URL | ArrayBuffer | Uint8Array | Blob;

export interface BootOptions {
  /** Guest RAM; with `state`, only compared with the state's (default: the state's). */
  memoryMiB?: number;
  /** Balloon features the host offers (default: the device's defaults; with `state`: the state's). */
  features?: readonly FeatureName[];
  /** Memory the balloon always leaves to the guest (host API floor, default "auto"). */
  floor?: FloorOption;
  /** Restore this state file (`v86-balloon snapshot`) instead of booting. */
  state?: StateSource;
  /** Aborting stops the load or boot and frees the emulator. */
  signal?: AbortSignal;
  images?: ImageUrls;
  cmdlineExtra?: string;
  bootTimeoutMs?: number;
  onSerial?: (text: string) => void;
  onProgress?: LoadProgress;
}

export interface Booted {
  vm: VM;
  balloon: BalloonLike;
  /** Guest RAM (the state's when restored). */
  memoryMiB: number;
}

/** Thrown for problems the page should explain rather than just print. */
export class LoadError extends Error {
  constructor(
    readonly kind: "webassembly" | "file" | "boot" | "state",
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

/** The page polls the guest's memory stats every second (charts, the "auto" floor). */
const STATS_INTERVAL_SECONDS = 1;

/** BalloonOptions for the device: each feature offered or not (by spec name), stats every second. */
function balloonOptions(features: readonly FeatureName[] | undefined, floor: FloorOption | undefined): AttachOptions {
  const opts: AttachOptions = { statsIntervalSeconds: STATS_INTERVAL_SECONDS, floor };
  if (features) opts.features = featureOffer(features);
  return opts;
}

/** True: this build boots the guest with the balloon device. */
export function hasBalloon(): boolean {
  return true;
}

/** The title a page shows for a LoadError (what went wrong, in one line). */
export function errorTitle(e: unknown): string {
  if (!(e instanceof LoadError)) return "The guest did not boot";
  return {
    webassembly: "WebAssembly is not available",
    file: "A guest file could not be loaded",
    state: "The saved state cannot be used",
    boot: "The guest did not boot",
  }[e.kind];
}

async function stateBytes(src: StateSource, onProgress?: LoadProgress): Promise<ArrayBuffer | Uint8Array> {
  if (typeof src === "string" || src instanceof URL) {
    const url = new URL(src, typeof document === "undefined" ? undefined : document.baseURI).href;
    try {
      return await fetchShared(url, onProgress);
    } catch (e) {
      // The images' rebuild hint does not apply to a state file.
      const why = (e as Error).message.replace(/^could not load \S+: /, "").replace(/ \(rebuild .*\)$/, "");
      throw new LoadError("file", `could not load the state file ${url}: ${why}`);
    }
  }
  if (src instanceof Blob) return src.arrayBuffer();
  return src;
}

/** Loads and checks a state file against what the page asked for; names the first mismatch. */
async function loadState(opts: BootOptions): Promise<{ header: StateHeader; v86State: ArrayBuffer }> {
  try {
    const { header, v86State } = await decodeStateFile(await stateBytes(opts.state!, opts.onProgress));
    const imageSha256 = manifestSha256(await fetchManifest(opts.images));
    checkStateMatches(header, { memoryMiB: opts.memoryMiB, features: opts.features, imageSha256 });
    // The device's validated restore gate, run on the file before an emulator exists (restore_state
    // runs it again, before v86 changes anything).
    checkBalloonSnapshot(v86State, { memoryBytes: header.memoryMiB * 1048576, features: featureOffer(header.features) });
    return { header, v86State };
  } catch (e) {
    if (e instanceof LoadError) throw e;
    if (e instanceof StateFileError) throw new LoadError("state", e.message);
    if (e instanceof StateError) throw new LoadError("state", `the saved state was refused: ${e.message}`);
    throw new LoadError("file", (e as Error).message);
  }
}

export async function bootGuest(opts: BootOptions = {}): Promise<Booted> {
  checkWebAssembly();
  if (opts.memoryMiB !== undefined && (!Number.isInteger(opts.memoryMiB) || opts.memoryMiB < MIN_MEMORY_MIB || opts.memoryMiB > MAX_MEMORY_MIB)) {
    throw new LoadError("boot", `guest RAM must be a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} (got ${opts.memoryMiB})`);
  }
  const classify = (e: unknown): never => {
    if (e instanceof LoadError) throw e;
    if (opts.signal?.aborted) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    if (/could not load|manifest|bytes, the manifest|HTTP \d|cannot fetch/.test(msg)) throw new LoadError("file", msg);
    if (/WebAssembly|wasm/i.test(msg)) throw new LoadError("webassembly", msg);
    if (opts.state) throw new LoadError("state", `restoring the saved state failed: ${msg}`);
    throw new LoadError("boot", msg);
  };
  // A boot's progress follows the images from their first byte (the VM module below may load after
  // them); a restore reports the state file first, then the BIOS images.
  const bootProgress = opts.state ? undefined : opts.onProgress;
  prefetch(opts.images, { boot: !opts.state, onProgress: bootProgress });
  // v86 and the device are a separate chunk: a page starts its downloads before parsing them.
  const vmModule = import("../browser/balloon-vm-browser.js");
  const restored = opts.state ? await loadState(opts) : null;
  const { startBrowserBalloonVM } = await vmModule.catch(classify);
  const memoryMiB = restored?.header.memoryMiB ?? opts.memoryMiB ?? DEFAULT_MEMORY_MIB;
  const { vm, balloon } = await startBrowserBalloonVM({
    memoryMiB,
    balloon: balloonOptions(restored?.header.features ?? opts.features, opts.floor),
    images: opts.images,
    cmdlineExtra: opts.cmdlineExtra,
    onSerial: opts.onSerial,
    onProgress: bootProgress ? undefined : opts.onProgress,
    bootTimeoutMs: opts.bootTimeoutMs,
    signal: opts.signal,
    ...(restored ? { initialState: restored.v86State } : {}),
  }).catch(classify);
  // A state carries the polling interval of the VM that saved it (the snapshot CLI's is 0): this page's applies.
  if (restored) balloon.setStatsInterval(STATS_INTERVAL_SECONDS);
  return { vm, balloon, memoryMiB };
}

/** Node side of the VM: images from `public/guest/`, checked against the manifest. */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { IMAGE_FILES, REBUILD_HINT, type GuestManifest } from "../guest-manifest.js";
import type { GuestImages } from "../vm.js";

export const GUEST_DIR = fileURLToPath(new URL("../../public/guest/", import.meta.url));

/** Path of v86's wasm: under Node ESM v86 cannot find it by itself. */
export function v86WasmPath(): string {
  return createRequire(import.meta.url).resolve("v86/build/v86.wasm");
}

function readImage(dir: string, name: string, manifest: GuestManifest | null): ArrayBuffer {
  const path = dir + name;
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    throw new Error(`guest image ${path} is missing: ${REBUILD_HINT}`);
  }
  const want = manifest?.outputs[name];
  if (want) {
    const got = createHash("sha256").update(data).digest("hex");
    if (got !== want.sha256) {
      throw new Error(`guest image ${path} is corrupt (sha256 ${got}, manifest says ${want.sha256}): ${REBUILD_HINT}`);
    }
  }
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}

/**
 * Loads the guest images. With a custom `kernel`/`initrd` path those files are used unchecked;
 * the committed ones must match `manifest.json`.
 */
export function loadGuestImages(opts: { dir?: string; kernel?: string; initrd?: string } = {}): GuestImages {
  // Files are joined by concatenation: accept a directory given without its trailing slash.
  const dir = opts.dir ? opts.dir.replace(/\/?$/, "/") : GUEST_DIR;
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(readFileSync(dir + "manifest.json", "utf8")) as GuestManifest;
  } catch (e) {
    throw new Error(`guest manifest ${dir}manifest.json is missing or not JSON (${(e as Error).message}): ${REBUILD_HINT}`);
  }
  const custom = (path: string | undefined, role: keyof typeof IMAGE_FILES) =>
    path ? readImage("", path, null) : readImage(dir, IMAGE_FILES[role], manifest);
  return {
    bios: readImage(dir, IMAGE_FILES.bios, manifest),
    vgaBios: readImage(dir, IMAGE_FILES.vgaBios, manifest),
    kernel: custom(opts.kernel, "kernel"),
    initrd: custom(opts.initrd, "initrd"),
    cmdline: manifest.cmdline,
  };
}

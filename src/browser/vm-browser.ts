/** Browser side of the VM: images fetched over HTTP with progress, v86's wasm resolved by Vite. */
import v86WasmUrl from "v86/build/v86.wasm?url";
import { IMAGE_FILES, REBUILD_HINT, type GuestManifest } from "../guest-manifest.js";
import type { GuestImages } from "../vm.js";

export { v86WasmUrl };

export interface ImageUrls {
  /** Directory holding manifest.json, bios.bin, vgabios.bin, bzImage, initramfs.cpio. */
  base?: string;
  /** Override single images (a docs site hosting its own kernel/initramfs). */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

/** Bytes loaded and expected so far over all images (total grows as responses announce sizes). */
export type LoadProgress = (loaded: number, total: number, file: string) => void;

/** The committed images, as the page serves them (Vite copies `public/` to the site root). */
export const DEFAULT_IMAGE_BASE = `${import.meta.env.BASE_URL}guest/`;

async function fetchBytes(url: string, onProgress?: LoadProgress): Promise<ArrayBuffer> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not load ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`could not load ${url}: HTTP ${res.status} (${REBUILD_HINT})`);
  const total = Number(res.headers.get("content-length") ?? 0);
  if (!res.body || !onProgress) return res.arrayBuffer();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total, url);
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out.buffer;
}

/** Sums per-file progress into one figure for all files. */
function overallProgress(onProgress: LoadProgress): LoadProgress {
  const files = new Map<string, [number, number]>();
  return (loaded, total, file) => {
    files.set(file, [loaded, total]);
    let l = 0;
    let t = 0;
    for (const [a, b] of files.values()) {
      l += a;
      t += Math.max(a, b);
    }
    onProgress(l, t, file);
  };
}

export async function fetchGuestImages(urls: ImageUrls = {}, progress?: LoadProgress): Promise<GuestImages> {
  const base = urls.base ?? DEFAULT_IMAGE_BASE;
  const onProgress = progress && overallProgress(progress);
  const manifestUrl = base + "manifest.json";
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(manifestUrl))) as GuestManifest;
  } catch (e) {
    throw new Error(`guest manifest ${manifestUrl} could not be read: ${(e as Error).message}`);
  }
  const get = async (url: string, name?: string) => {
    const data = await fetchBytes(url, onProgress);
    const want = name ? manifest.outputs[name] : undefined;
    if (want && data.byteLength !== want.size) {
      throw new Error(`${url} has ${data.byteLength} bytes, the manifest says ${want.size}: ${REBUILD_HINT}`);
    }
    return data;
  };
  const [bios, vgaBios, kernel, initrd] = await Promise.all([
    get(base + IMAGE_FILES.bios, IMAGE_FILES.bios),
    get(base + IMAGE_FILES.vgaBios, IMAGE_FILES.vgaBios),
    urls.kernel ? get(urls.kernel) : get(base + IMAGE_FILES.kernel, IMAGE_FILES.kernel),
    urls.initrd ? get(urls.initrd) : get(base + IMAGE_FILES.initrd, IMAGE_FILES.initrd),
  ]);
  return { bios, vgaBios, kernel, initrd, cmdline: urls.cmdline ?? manifest.cmdline };
}

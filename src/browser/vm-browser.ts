/**
 * Browser side of the VM: images and v86's wasm fetched over HTTP with progress, through one cache per
 * page (N VMs on a page fetch each file once), failures naming the URL.
 */
import { IMAGE_FILES, REBUILD_HINT, type GuestManifest } from "../guest-manifest.js";
import type { GuestImages } from "../vm.js";
import { bundledAssets } from "./assets.js";

export interface ImageUrls {
  /** Directory holding manifest.json, bios.bin, vgabios.bin, bzImage.bin, initramfs.cpio. */
  base?: string;
  /** Single files (a docs site hosting its own kernel/initramfs); each overrides `base`. */
  manifest?: string;
  bios?: string;
  vgaBios?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

/** Bytes loaded and expected so far over all images (total grows as responses announce sizes). */
export type LoadProgress = (loaded: number, total: number, file: string) => void;

/** One download shared by every VM on the page that wants the same URL. */
interface Download {
  bytes: Promise<ArrayBuffer>;
  loaded: number;
  total: number;
  listeners: Set<LoadProgress>;
}

const downloads = new Map<string, Download>();

async function download(url: string, d: Download): Promise<ArrayBuffer> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not load ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`could not load ${url}: HTTP ${res.status} (${REBUILD_HINT})`);
  d.total = Number(res.headers.get("content-length") ?? 0);
  if (!res.body) return res.arrayBuffer();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    d.loaded += value.length;
    for (const fn of d.listeners) fn(d.loaded, d.total, url);
  }
  const out = new Uint8Array(d.loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out.buffer;
}

/**
 * The bytes at `url`, fetched once per page; a failed fetch is forgotten so Retry fetches again.
 * Callers get the shared buffer: copy it before handing it to anything that may keep or detach it.
 */
export function fetchShared(url: string, onProgress?: LoadProgress): Promise<ArrayBuffer> {
  let d = downloads.get(url);
  if (!d) {
    const entry: Download = { bytes: Promise.resolve(new ArrayBuffer(0)), loaded: 0, total: 0, listeners: new Set() };
    entry.bytes = download(url, entry).catch((e: unknown) => {
      downloads.delete(url);
      throw e;
    });
    downloads.set(url, (d = entry));
  }
  if (onProgress) {
    const fn = onProgress;
    d.listeners.add(fn);
    if (d.loaded) fn(d.loaded, d.total, url);
    const done = () => d.listeners.delete(fn);
    d.bytes.then(done, done);
  }
  return d.bytes;
}

const modules = new Map<string, Promise<WebAssembly.Module>>();

/** A wasm module compiled once per page from `url` (v86's 2 MiB core is shared by every VM). */
export function compileShared(url: string): Promise<WebAssembly.Module> {
  let m = modules.get(url);
  if (!m) {
    m = fetchShared(url).then(
      (bytes) => WebAssembly.compile(bytes),
    );
    m.catch(() => modules.delete(url));
    modules.set(url, m);
  }
  return m;
}

/** The files to load: explicit single files, else `base` + name, else the bundled copies. */
export function resolveImageUrls(urls: ImageUrls = {}): Required<Omit<ImageUrls, "base" | "cmdline">> & { cmdline?: string } {
  const bundled = bundledAssets().images;
  const from = (role: keyof typeof IMAGE_FILES | "manifest"): string => {
    const file = role === "manifest" ? "manifest.json" : IMAGE_FILES[role];
    const explicit = urls[role] ?? (urls.base ? urls.base.replace(/\/?$/, "/") + file : undefined);
    return explicit ?? bundled[role] ?? (bundled.base ?? "") + file;
  };
  return {
    manifest: from("manifest"),
    bios: from("bios"),
    vgaBios: from("vgaBios"),
    kernel: from("kernel"),
    initrd: from("initrd"),
    ...(urls.cmdline ? { cmdline: urls.cmdline } : {}),
  };
}

/**
 * Starts every download and the v86 compile at once (into the page's caches), so a restore does not wait
 * for them one after another behind the state file; failures surface later, where the files are used.
 * `onProgress` follows the images from their first byte (as fetchGuestImages reports them).
 */
export function prefetch(given: ImageUrls = {}, opts: { boot?: boolean; onProgress?: LoadProgress } = {}): void {
  const urls = resolveImageUrls(given);
  const progress = opts.onProgress && overallProgress(opts.onProgress);
  fetchShared(urls.manifest).catch(() => {});
  for (const url of [urls.bios, urls.vgaBios, ...(opts.boot === false ? [] : [urls.kernel, urls.initrd])]) fetchShared(url, progress).catch(() => {});
  compileShared(v86WasmUrl()).catch(() => {});
}

/** URL of v86's wasm for this page (the bundled copy). */
export function v86WasmUrl(): string {
  return bundledAssets().v86Wasm;
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

/** The manifest.json of the images `given` selects (fetched once per page). */
export async function fetchManifest(given: ImageUrls = {}): Promise<GuestManifest> {
  const url = resolveImageUrls(given).manifest;
  try {
    return JSON.parse(new TextDecoder().decode(await fetchShared(url))) as GuestManifest;
  } catch (e) {
    throw new Error(`guest manifest ${url} could not be read: ${(e as Error).message}`);
  }
}

/**
 * The images for a VM. `{ boot: false }` (restoring a state) loads only the BIOS images: the kernel and
 * initramfs are in the state's RAM, and a docs page saves their 5 MiB download.
 */
export async function fetchGuestImages(given: ImageUrls = {}, progress?: LoadProgress, opts: { boot?: boolean } = {}): Promise<GuestImages> {
  const urls = resolveImageUrls(given);
  const onProgress = progress && overallProgress(progress);
  const manifest = await fetchManifest(given);
  // Custom single files are used unchecked; the ones from the manifest's directory must match its sizes.
  const get = async (role: keyof typeof IMAGE_FILES) => {
    const url = urls[role];
    const data = await fetchShared(url, onProgress);
    const want = given[role] ? undefined : manifest.outputs[IMAGE_FILES[role]];
    if (want && data.byteLength !== want.size) {
      throw new Error(`${url} has ${data.byteLength} bytes, the manifest says ${want.size}: ${REBUILD_HINT}`);
    }
    // v86 keeps (and may modify) what it is given: each VM gets its own copy of the shared bytes.
    return data.slice(0);
  };
  const none = async () => new ArrayBuffer(0);
  const boot = opts.boot ?? true;
  const [bios, vgaBios, kernel, initrd] = await Promise.all([get("bios"), get("vgaBios"), boot ? get("kernel") : none(), boot ? get("initrd") : none()]);
  return { bios, vgaBios, kernel, initrd, cmdline: urls.cmdline ?? manifest.cmdline };
}

/**
 * Where the browser finds the guest images and v86's wasm when the page gives no `images`: in this
 * repository (the demo, the harness page, the site build) the site's `guest/` directory and Vite's URL
 * for v86.wasm. The library build (vite.lib.config.ts) replaces this module with one that names every
 * file by `new URL("<literal>", import.meta.url)` relative to the published module, which a plain
 * `<script type="module">` page resolves as is and a consumer's bundler copies as assets.
 */
import v86WasmUrl from "v86/build/v86.wasm?url";
import type { ImageUrls } from "./vm-browser.js";

export interface BundledAssets {
  images: ImageUrls;
  v86Wasm: string;
}

export function bundledAssets(): BundledAssets {
  return { images: { base: `${import.meta.env.BASE_URL}guest/` }, v86Wasm: v86WasmUrl };
}

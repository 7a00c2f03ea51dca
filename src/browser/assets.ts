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
  // The site build puts its modules in assets/ and public/guest/ at the site root; a variable keeps Vite
  // from copying the directory as an asset. The dev server serves public/ at its root.
  const fromModule = "../guest/";
  const base = import.meta.env.DEV ? `${import.meta.env.BASE_URL}guest/` : new URL(fromModule, import.meta.url).href;
  return { images: { base }, v86Wasm: v86WasmUrl };
}

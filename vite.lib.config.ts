/**
 * Library build of the embeddable VM (`npm run build:lib`, run by `prepack`): the ES module
 * dist/lib/v86-balloon.js, that registers <v86-balloon-vm> and exports mount(), its chunks (v86 and the
 * device load as a second chunk, so a page starts its downloads before parsing them), and v86.wasm, all
 * beside each other. Every file the module loads by default is named by `new URL("<literal>", import.meta.url)`
 * in the OUTPUT (written after Vite's own asset transform, so this build leaves the literals alone): a
 * plain `<script type="module">` page resolves them against the installed package, and a consumer's
 * bundler (Vite) copies them as assets. The guest images stay where the package keeps them
 * (public/guest/, shared with the Node API), so the tarball carries them once.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";
import { IMAGE_FILES } from "./src/guest-manifest.js";

const ASSETS_MODULE = resolve(import.meta.dirname, "src/browser/assets.ts");
/** Placeholder call the plugin swaps for `new URL(...)` once the chunk is rendered. */
const MARK = "__v86BalloonAssetUrl__";

function assetsBesideModule(): Plugin {
  const url = (rel: string) => `${MARK}(${JSON.stringify(rel)})`;
  const images = Object.entries({ manifest: "manifest.json", ...IMAGE_FILES })
    .map(([role, file]) => `${role}: ${url(`../../public/guest/${file}`)}`)
    .join(", ");
  return {
    name: "v86-balloon:assets-beside-module",
    enforce: "pre",
    load(id) {
      if (id !== ASSETS_MODULE) return null;
      return `export function bundledAssets() { return { images: { ${images} }, v86Wasm: ${url("./v86.wasm")} }; }\n`;
    },
    renderChunk(code) {
      if (!code.includes(MARK)) return null;
      return { code: code.replace(new RegExp(`${MARK}\\(("[^"]+")\\)`, "g"), "new URL($1, import.meta.url).href"), map: null };
    },
    generateBundle() {
      const path = createRequire(import.meta.url).resolve("v86/build/v86.wasm");
      this.emitFile({ type: "asset", fileName: "v86.wasm", source: readFileSync(path) });
    },
  };
}

export default defineConfig({
  base: "./",
  publicDir: false,
  plugins: [assetsBesideModule()],
  build: {
    outDir: "dist/lib",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    lib: {
      entry: resolve(import.meta.dirname, "src/embed/index.ts"),
      formats: ["es"],
      fileName: () => "v86-balloon.js",
    },
  },
});

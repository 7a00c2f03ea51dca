/**
 * Library build of the embeddable VM (`npm run build:lib`, run by `prepack`): the ES module
 * dist/lib/v86-balloon.js, that registers <v86-balloon-vm> and exports mount(), its chunks (v86 and the
 * device load as a second chunk, so a page starts its downloads before parsing them), and v86.wasm, all
 * beside each other. Every file the module loads by default is named by `new URL("<literal>", import.meta.url)`
 * in the OUTPUT (written after Vite's own asset transform, so this build leaves the literals alone): a
 * plain `<script type="module">` page resolves them against the installed package, and a consumer's
 * bundler (Vite) copies them as assets. The guest images stay where the package keeps them
 * (public/guest/, shared with the Node API), so the tarball carries them once.
 *
 * `--mode harness` builds the page `v86-balloon test --browser` drives in an installed package (no Vite or
 * tsx at run time there): dist/lib/harness-page.js from src/harness/browser/page.ts, and harness.html
 * from src/harness/browser/index.html, beside the library (same asset URLs, same v86.wasm), served by the
 * CLI's own static server (src/harness/browser-runner.ts). A checkout runs the TypeScript page through Vite.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";
import { IMAGE_FILES } from "./src/guest-manifest.js";

const ASSETS_MODULE = resolve(import.meta.dirname, "src/browser/assets.ts");
const HARNESS_DIR = resolve(import.meta.dirname, "src/harness/browser");
/** The built harness page's file names (read by src/harness/browser-runner.ts too). */
export const HARNESS_PAGE = { html: "harness.html", module: "harness-page.js" };
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

/** The harness page's HTML, loading the built module instead of the TypeScript source. */
function harnessHtml(): Plugin {
  return {
    name: "v86-balloon:harness-html",
    generateBundle() {
      const html = readFileSync(resolve(HARNESS_DIR, "index.html"), "utf8").replace("./page.ts", `./${HARNESS_PAGE.module}`);
      this.emitFile({ type: "asset", fileName: HARNESS_PAGE.html, source: html });
    },
  };
}

export default defineConfig(({ mode }) => {
  const harness = mode === "harness";
  return {
    base: "./",
    publicDir: false,
    plugins: [assetsBesideModule(), ...(harness ? [harnessHtml()] : [])],
    build: {
      outDir: "dist/lib",
      // The harness build goes beside the library.
      emptyOutDir: !harness,
      target: "es2022",
      sourcemap: true,
      lib: {
        entry: harness ? resolve(HARNESS_DIR, "page.ts") : resolve(import.meta.dirname, "src/embed/index.ts"),
        formats: ["es"],
        fileName: () => (harness ? HARNESS_PAGE.module : "v86-balloon.js"),
      },
    },
  };
});

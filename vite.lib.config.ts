/**
 * Library build of the embeddable VM (`npm run build:lib`): one ES module, dist/lib/v86-balloon.js,
 * that registers <v86-balloon-vm> and exports mount(). v86's 2 MiB wasm is not inlined: it is
 * written next to the module as dist/lib/v86.wasm and found through import.meta.url. Type
 * declarations go to dist/lib/types/ (tsc --emitDeclarationOnly, see package.json).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";

const V86_WASM_URL = "v86/build/v86.wasm?url";

function v86WasmBesideModule(): Plugin {
  const virtualId = "\0v86-balloon:v86-wasm-url";
  return {
    name: "v86-balloon:v86-wasm-beside-module",
    enforce: "pre",
    resolveId(source) {
      return source === V86_WASM_URL ? virtualId : null;
    },
    load(id) {
      // A variable (not a literal) so Vite's asset transform leaves this URL alone.
      if (id === virtualId) return `const file = "v86.wasm";\nexport default new URL(file, import.meta.url).href;\n`;
      return null;
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
  plugins: [v86WasmBesideModule()],
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

import { defineConfig } from "vite";
import { resolve } from "node:path";

// The demo page (index.html) and the embed example are both entry points of the static site.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    target: "es2022",
    rollupOptions: {
      input: {
        demo: resolve(import.meta.dirname, "index.html"),
        embed: resolve(import.meta.dirname, "examples/embed.html"),
      },
    },
  },
  server: { host: "127.0.0.1" },
  preview: { host: "127.0.0.1" },
});

/**
 * Shared helper for the Chromium tests and the demo benchmark: a static server for the built site
 * and Debian's Chromium driven by playwright-core, one browser at a time per machine.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { CHROMIUM } from "../src/node/chromium.js";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const DIST = join(ROOT, "dist");
export const ARTIFACTS = join(ROOT, "test-artifacts");

/** Why the browser tests cannot run here, or null. Only a missing Chromium is a reason to skip. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is absent: browser tests skipped (install it with \`npm run test:setup\`)`;
}

/** Throws unless the site was built (npm test builds it first). */
export function requireBuiltSite(): void {
  if (!existsSync(join(DIST, "index.html")) || !existsSync(join(DIST, "guest", "manifest.json"))) {
    throw new Error(`the built site is missing (${DIST}/index.html, ${DIST}/guest/): run \`npm run build\` first`);
  }
}

export { serveStatic, type StaticServer } from "../src/node/static-server.js";
export { CHROMIUM, CHROMIUM_ARGS, launchChromium, type Browser } from "../src/node/chromium.js";

/** Page errors and console errors seen so far. */
export function pageErrors(page: Page): string[] {
  return (page as Page & { errors?: string[] }).errors ?? [];
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

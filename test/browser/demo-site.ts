/** Test-file set-up shared by the demo's Chromium tests (kept apart from demo-page.ts, which the bench imports too). */
import { afterAll, beforeAll } from "vitest";
import { DIST, launchChromium, requireBuiltSite, serveStatic, type Browser, type StaticServer } from "../../devkit/browser.js";

/** For one test file: the built site served and Debian's Chromium launched before its tests, both closed after. */
export function useDemoSite(viewport?: { width: number; height: number }): { server: StaticServer; browser: Browser } {
  const site = {} as { server: StaticServer; browser: Browser };
  beforeAll(async () => {
    requireBuiltSite();
    site.server = await serveStatic(DIST);
    site.browser = await launchChromium(viewport ? { viewport } : {});
  });
  afterAll(async () => {
    await site.browser?.close();
    await site.server?.close();
  });
  return site;
}

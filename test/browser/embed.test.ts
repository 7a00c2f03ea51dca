/**
 * The embeddable element in Chromium: examples/embed.html (two VMs on one page, from the built site).
 * The library build from a plain page and a bundler is test/package.test.ts (from the installed tarball).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { waitElementReady } from "./embed-page.js";
import { artifactPath, chromiumMissing, DIST, launchChromium, pageErrors, requireBuiltSite, serveStatic, type Browser, type StaticServer } from "../../devkit/browser.js";

const missing = chromiumMissing();
if (missing) console.warn(`SKIP test/browser/embed.test.ts: ${missing}`);

type VMEl = HTMLElement & {
  ready: Promise<unknown>;
  text(): string;
  balloon: { features: { negotiatedNames: string[] } } | null;
};

async function waitElementText(page: Page, id: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const start = Date.now();
  for (;;) {
    const text = await page.evaluate((id) => (document.getElementById(id) as VMEl).text(), id);
    if (pattern.test(text)) return text;
    if (Date.now() - start > timeoutMs) throw new Error(`#${id} did not show ${pattern}; it ends with:\n${text.slice(-1200)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(missing !== null)("embeddable <v86-balloon-vm> in Chromium", () => {
  let browser: Browser;
  let server: StaticServer | undefined;

  beforeAll(async () => {
    requireBuiltSite();
    browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("examples/embed.html boots two VMs, each with its own terminal and balloon features", async () => {
    server = await serveStatic(DIST);
    const page = browser.page;
    await page.goto(`${server.url}examples/embed.html`);
    await Promise.all([waitElementReady(page, "vm1"), waitElementReady(page, "vm2")]);
    // vm2 typed its `commands` attribute once up.
    await waitElementText(page, "vm2", /Linux .*i686[\s\S]*Mem:/);
    // Typing into vm1's terminal reaches vm1 only.
    await page.locator("#vm1 .xterm").click();
    await page.keyboard.type("echo one-$((1 + 1))\n");
    await waitElementText(page, "vm1", /one-2/);
    expect(await page.evaluate(() => (document.getElementById("vm2") as VMEl).text())).not.toContain("one-2");
    const negotiated = await page.evaluate(() =>
      ["vm1", "vm2"].map((id) => (document.getElementById(id) as VMEl).balloon?.features.negotiatedNames ?? null),
    );
    expect(negotiated[0]).toContain("FREE_PAGE_HINT"); // features="all"
    expect(negotiated[1]).toContain("STATS_VQ"); // features="stats,reporting"
    expect(negotiated[1]).not.toContain("FREE_PAGE_HINT");
    await page.screenshot({ path: artifactPath("embed-two-vms.png"), fullPage: true });
    expect(pageErrors(page)).toEqual([]);
    await page.goto("about:blank");
    await server.close();
    server = undefined;
  });
});

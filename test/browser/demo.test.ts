/**
 * The demo page (built site, dist/) in Debian's Chromium: boot, typing into the terminal, the balloon
 * slider against the chart data, scenarios, hinting feedback, copy feedback, snapshot save/restore and
 * the snapshot comparison's wording. One guest (booted before the tests); each test brings the balloon
 * to the state it needs itself, so none depends on another's order.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { artifactPath, chromiumMissing, pageErrors } from "../../devkit/browser.js";
import { runInTerminal, terminalText, waitForTerminal, waitReady } from "../../devkit/demo-page.js";
import { useDemoSite } from "./demo-site.js";

const missing = chromiumMissing();
if (missing) console.warn(`SKIP test/browser/demo.test.ts: ${missing}`);

/** Waits until the charts have redrawn at least once more (instead of sleeping). */
async function nextRedraw(page: Page): Promise<void> {
  const r0 = await page.evaluate(() => window.__demo.charts.redraws);
  await page.waitForFunction((r) => window.__demo.charts.redraws > r, r0, { timeout: 30_000 });
}

/** Sets the target through the page's controls and waits until the driver settled there. */
async function settle(page: Page, mib: number): Promise<void> {
  await page.evaluate((m) => window.__demo.controls!.setTargetMiB(m), mib);
  await page.waitForFunction((m) => window.__demo.balloon!.actual === (m * 1048576) / 4096, mib, { timeout: 120_000, polling: 250 });
}

describe.skipIf(missing !== null)("demo page in Chromium", () => {
  const site = useDemoSite();
  let page: Page;

  beforeAll(async () => {
    page = site.browser.page;
    // No DEFLATE_ON_OOM: the guest's MemTotal then shrinks with the balloon (checked below).
    await page.goto(`${site.server.url}index.html?autoboot&memory=256&features=must-tell-host,stats,hinting,reporting,init-reported,init-on-inflate`);
    await waitReady(page);
  });

  it("boots the guest to an interactive prompt", async () => {
    const text = await terminalText(page);
    expect(text).toContain("v86-balloon guest: init ready");
    expect(await page.locator("#status").innerText()).toMatch(/256 MiB guest · booted in/);
    await page.screenshot({ path: artifactPath("demo-booted.png") });
  });

  it("shows the output of a command typed into the terminal", async () => {
    await waitForTerminal(page, /~ # $/);
    const before = (await terminalText(page)).length;
    await page.locator("#terminal").click();
    await page.keyboard.type("echo typed-$((6 * 7)); ls /bin | grep -c memtouch\n", { delay: 5 });
    const text = await waitForTerminal(page, /typed-42\s+1\s/, before);
    expect(text.slice(before)).toMatch(/~ # $/);
  });

  it("moving the target slider shrinks MemTotal in the chart data and actual follows", async () => {
    await settle(page, 0);
    // Stats arrive every second: wait for a MemTotal sample first.
    await page.waitForFunction(() => window.__demo.charts.latest("memTotal") !== null, undefined, { timeout: 30_000 });
    const total0 = await page.evaluate(() => window.__demo.charts.latest("memTotal")!);
    const slider = page.locator("#target-slider");
    await slider.focus();
    await slider.evaluate((el: HTMLInputElement) => {
      el.value = "48";
      el.dispatchEvent(new Event("input", { bubbles: true }));
      el.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await page.waitForFunction(
      () => {
        const c = window.__demo.charts;
        return c.latest("target") === 48 && c.latest("actual") === 48;
      },
      undefined,
      { timeout: 60_000, polling: 250 },
    );
    await page.waitForFunction((t0) => (window.__demo.charts.latest("memTotal") ?? t0) <= t0 - 40, total0, { timeout: 30_000 });
    const total1 = await page.evaluate(() => window.__demo.charts.latest("memTotal")!);
    expect(total0 - total1).toBeGreaterThanOrEqual(40);
    expect(total0 - total1).toBeLessThanOrEqual(56);
    expect(await page.evaluate(() => window.__demo.log.totals.inflate)).toBeGreaterThan(0);
    await nextRedraw(page);
    // Each chart's text view carries the same latest values as the canvas.
    expect(await page.locator("#chart-text-1").innerText()).toMatch(/target\s+48\.0 MiB[\s\S]*actual\s+48\.0 MiB/);
    await page.screenshot({ path: artifactPath("demo-inflated.png") });
    await settle(page, 0);
  });

  it("a scenario frees memory the guest then reports; a hinting cycle hints pages and says so", async () => {
    await settle(page, 0);
    const reports0 = await page.evaluate(() => window.__demo.log.totals.report);
    const before = (await terminalText(page)).length;
    await page.locator('[data-scenario="alloc"]').click();
    await waitForTerminal(page, /memtouch: \d+ MiB in/, before, 60_000);
    expect(await page.locator("#scenario-status").innerText()).toMatch(/Typed into the guest: free -m; memtouch/);
    // Linux reports freed 4 MiB blocks about 2 s after they are freed.
    await page.waitForFunction((r) => window.__demo.log.totals.report > r, reports0, { timeout: 30_000 });
    const hinted0 = await page.evaluate(() => window.__demo.balloon!.counters().pagesHinted);
    await page.locator("#hint-cycle").click();
    // Visible feedback at once, then the result of the cycle.
    expect(await page.locator("#hint-note").innerText()).toMatch(/Hinting cycle started|Hinting cycle \d+ done/);
    await page.waitForFunction((h) => window.__demo.balloon!.counters().pagesHinted > h, hinted0, { timeout: 30_000 });
    await page.locator("#hint-note", { hasText: /Hinting cycle \d+ done: the guest hinted \d+ free pages/ }).waitFor({ timeout: 30_000 });
    await nextRedraw(page);
    // A test artifact; docs/demo.png (README) is a copy of one of these, refreshed by hand.
    await page.screenshot({ path: artifactPath("demo-scenario.png") });
  });

  it("Copy with nothing selected says so; with a selection it copies", async () => {
    await page.evaluate(() => window.__demo.terminal.term.clearSelection());
    await page.locator("#term-copy").click();
    await page.locator("#term-note", { hasText: "Nothing selected" }).waitFor({ timeout: 5_000 });
    await site.browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: site.server.url });
    await page.evaluate(() => window.__demo.terminal.term.selectAll());
    await page.locator("#term-copy").click();
    await page.locator("#term-note", { hasText: /Copied \d+ characters/ }).waitFor({ timeout: 5_000 });
  });

  it("saves a snapshot, restores it, and the shell still answers", async () => {
    await runInTerminal(page, "echo before > /tmp/mark; echo marked-$((1+1))", /marked-2/);
    await page.locator("#snap-save").click();
    await page.locator(".snap").first().waitFor({ timeout: 60_000 });
    const row = await page.locator(".snap").first().innerText();
    expect(row).toMatch(/MiB/);
    expect(row).toMatch(/gz /);
    const sizes = await page.evaluate(() => window.__demo.snapshot!.snapshots.map((s) => [s.raw, s.gzip]));
    // v86 stores only non-zero pages; gzip shrinks that further.
    expect(sizes[0][0]).toBeGreaterThan(1 << 20);
    expect(Number(sizes[0][1])).toBeLessThan(sizes[0][0]!);
    await runInTerminal(page, "echo after > /tmp/mark; echo changed-$((1+1))", /changed-2/);
    await page.locator(".snap-restore").first().click();
    await page.locator("#snapshot", { hasText: "restored" }).waitFor({ timeout: 60_000 });
    const out = await runInTerminal(page, "cat /tmp/mark; echo alive-$((2 + 3))", /alive-5/, 30_000);
    expect(out).toMatch(/before\s+alive-5/);
    // The same snapshot as a state file (the embed's and the snapshot CLI's format), loaded from disk.
    const file = await page.evaluate(async () => Array.from(await window.__demo.snapshot!.fileOf(window.__demo.snapshot!.snapshots[0])));
    await runInTerminal(page, "echo after > /tmp/mark; echo changed-$((3+3))", /changed-6/);
    await page.locator("#snap-file").setInputFiles({ name: "saved.state", mimeType: "application/gzip", buffer: Buffer.from(file) });
    await page.locator("#snapshot", { hasText: "restored saved.state" }).waitFor({ timeout: 60_000 });
    expect(await runInTerminal(page, "cat /tmp/mark; echo alive-$((3 + 3))", /alive-6/, 30_000)).toMatch(/before\s+alive-6/);
    // Not a state file: refused, named, and the guest goes on.
    await page.locator("#snap-file").setInputFiles({ name: "junk.state", mimeType: "application/gzip", buffer: Buffer.from("not a state") });
    await page.locator("#snapshot", { hasText: "error: not a v86-balloon state file" }).waitFor({ timeout: 30_000 });
    expect(await runInTerminal(page, "echo still-$((4 + 4))", /still-8/, 30_000)).toMatch(/still-8/);
    expect(pageErrors(page).filter((e) => !/favicon/.test(e))).toEqual([]);
  });

  it("the snapshot comparison calls a larger snapshot a loss, in the loss colour", async () => {
    await settle(page, 0);
    const gain = await page.evaluate(async () => {
      const r = await window.__demo.snapshot!.measureGain(96);
      return { before: r.before.gzip ?? r.before.raw, after: r.after.gzip ?? r.after.raw };
    });
    const el = page.locator("#snap-gain");
    const text = await el.innerText();
    const cls = await el.getAttribute("class");
    if (gain.after >= gain.before) {
      expect(text).toMatch(/larger: a loss, no gain/);
      expect(cls).toContain("loss");
    } else {
      expect(text).toMatch(/smaller: a gain/);
      expect(cls).toContain("good");
    }
    // The wording never gives a loss a minus sign or a gain a plus sign (the old "+51.0 KiB, -1.4%").
    expect(text).not.toMatch(/\(\+|, -\d/);
    // Here free memory was already reported and zeroed, so the gain is ~0 (dirty free memory shows
    // ~100 MiB); inflating must at least not grow the state beyond the balloon's own bitmap.
    expect(gain.after).toBeLessThanOrEqual(gain.before + (256 << 10));
  });

  it("shows the error panel when a guest file cannot be loaded", async () => {
    const p = await site.browser.context.newPage();
    try {
      await p.route("**/guest/bzImage.bin", (route) => route.fulfill({ status: 404, body: "gone" }));
      await p.goto(`${site.server.url}index.html?autoboot&memory=96`);
      await p.locator("#error").waitFor({ state: "visible", timeout: 30_000 });
      expect(await p.locator("#error-title").innerText()).toMatch(/guest file could not be loaded/);
      expect(await p.locator("#error-text").innerText()).toMatch(/bzImage.*404/);
      expect(await p.evaluate(() => window.__demo.state)).toBe("error");
      expect(await p.locator("#status").innerText()).toMatch(/error: .*bzImage/);
    } finally {
      await p.close();
    }
  });
});

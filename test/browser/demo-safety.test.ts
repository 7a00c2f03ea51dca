/**
 * The demo cannot take the guest down, and says so when the guest goes down anyway:
 *  - a target past the host floor is held below it (slider, input, buttons), the page says why, and the
 *    guest still answers (today's main: target 256 of 256 MiB floods "Out of puff" / panics);
 *  - an OOM kill and a kernel panic on the serial console show in the status with a Reboot action,
 *    and Reboot boots the same machine again;
 *  - a run of identical console lines is collapsed.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { chromiumMissing } from "../../devkit/browser.js";
import { bootDemo, runInTerminal, terminalText, waitForTerminal, waitReady } from "../../devkit/demo-page.js";
import { useDemoSite } from "./demo-site.js";

const missing = chromiumMissing();
if (missing) console.warn(`SKIP test/browser/demo-safety.test.ts: ${missing}`);

const MiB = 256; // pages

describe.skipIf(missing !== null)("demo safety in Chromium", () => {
  const site = useDemoSite();
  let page: Page;

  beforeAll(async () => {
    // The machine: 256 MiB without DEFLATE_ON_OOM.
    page = await bootDemo(site.browser, site.server.url, "?autoboot&memory=256&features=stats,reporting");
  });

  it("a 256 MiB target on a 256 MiB guest is held at the floor, the page says why, the guest answers", async () => {
    const trouble0 = await page.evaluate(() => window.__demo.trouble);
    // Precondition: the floor has the guest's own numbers (a stats sample with MemAvailable).
    await page.waitForFunction(() => window.__demo.balloon!.limit().source === "stats", undefined, { timeout: 30_000 });
    // As a user would: type 256 into the number input.
    await page.locator("#target-input").fill("256");
    await page.locator("#target-input").press("Enter");
    await page.locator("#target-input").blur();
    // The limit moves with each stats sample: check the one the target was held at.
    const { target, clamp } = await page.evaluate(() => ({ target: window.__demo.balloon!.target, clamp: window.__demo.balloon!.lastClamp }));
    expect(clamp).not.toBeNull();
    expect(clamp!.requested).toBe(256 * MiB);
    expect(target).toBe(clamp!.pages);
    expect(clamp!.limit.source).toBe("stats");
    const limit = clamp!.limit.maxPages;
    expect(limit).toBeGreaterThan(64 * MiB);
    expect(limit).toBeLessThan(240 * MiB);
    await page.locator("#limit-note", { hasText: /Held at \d+ MiB, not 256: the guest can spare/ }).waitFor({ timeout: 5_000 });
    expect(Number(await page.locator("#target-slider").getAttribute("max"))).toBeLessThanOrEqual(Math.floor(limit / MiB) + 4);
    // The Inflate button cannot pass it either.
    await page.getByRole("button", { name: /^Inflate/ }).click();
    // Against the limit in force at the click (a stats sample arriving afterwards moves the limit).
    const after = await page.evaluate(() => ({ target: window.__demo.balloon!.target, clamp: window.__demo.balloon!.lastClamp }));
    expect(after.clamp).not.toBeNull();
    expect(after.target).toBeLessThanOrEqual(after.clamp!.limit.maxPages);
    // The balloon gets there, or as far as the guest's own driver floor (virtio_balloon.floor_mb, which
    // says so on the console) lets it, and the guest is fine.
    await page.waitForFunction(
      () => window.__demo.balloon!.actual === window.__demo.balloon!.target || /held at \d+: the guest keeps \d+ MiB \(floor_mb\)/.test(window.__demo.text()),
      undefined, { timeout: 180_000, polling: 500 },
    );
    const out = await runInTerminal(page, "echo alive-$((20 + 22))", /alive-42/, 60_000);
    expect(out).not.toMatch(/Out of puff|Kernel panic|Out of memory/);
    expect(await page.evaluate(() => window.__demo.trouble)).toEqual(trouble0);
    await page.evaluate(() => window.__demo.controls!.setTargetMiB(0));
    await page.waitForFunction(() => window.__demo.balloon!.actual === 0, undefined, { timeout: 120_000 });
  });

  it("identical console lines are collapsed into one and a count", async () => {
    const out = await runInTerminal(page, "yes same-line-again | head -n 60; echo done-$((1 + 1))", /done-2/);
    expect(out.match(/^same-line-again$/gm)?.length).toBe(1);
    expect(out).toMatch(/same-line-again\s+\.\.\. the line above repeated 59 more times\s+done-2/);
    expect(await page.evaluate(() => window.__demo.console.collapsed)).toBeGreaterThanOrEqual(59);
  });

  it("an OOM kill in the guest shows in the status with a Reboot action", async () => {
    expect(await page.locator("#reboot").isVisible()).toBe(false);
    // Precondition, whatever ran before on this page: an empty balloon, so the OOM is memtouch's own.
    await page.evaluate(() => window.__demo.controls!.setTargetMiB(0));
    await page.waitForFunction(() => window.__demo.balloon!.actual === 0, undefined, { timeout: 120_000 });
    // The page's own "Trigger OOM" scenario: memtouch as much as MemTotal.
    const before = (await terminalText(page)).length;
    await page.locator('[data-scenario="oom"]').click();
    await waitForTerminal(page, /Out of memory: Killed process \d+ \(memtouch\)/, before, 120_000);
    await page.locator("#status", { hasText: /ran out of memory.*Killed process \d+ \(memtouch\)/ }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => window.__demo.trouble?.kind)).toBe("oom");
    expect(await page.locator("#reboot").isVisible()).toBe(true);
  });

  it("a kernel panic shows in the status, and Reboot boots the same machine again", async () => {
    const p = await bootDemo(site.browser, site.server.url, "?autoboot&memory=96&features=stats");
    try {
      // A test-only panic: the exact line Linux prints, fed to the page's console stream (the guest has no sysrq).
      await p.evaluate(() => window.__demo.console.write("[   42.000000] Kernel panic - not syncing: System is deadlocked on memory\r\n"));
      await p.waitForFunction(() => window.__demo.trouble !== null, undefined, { timeout: 10_000 });
      expect(await p.locator("#status").innerText()).toBe("the guest kernel panicked and is dead: Kernel panic - not syncing: System is deadlocked on memory");
      expect(await p.locator("#status").getAttribute("data-state")).toBe("trouble");
      await p.locator("#reboot").click();
      await p.waitForURL(/memory=96.*features=stats.*autoboot/, { timeout: 30_000 });
      await waitReady(p);
      expect(await p.evaluate(() => [window.__demo.memoryMiB, window.__demo.features, window.__demo.trouble])).toEqual([96, ["stats"], null]);
      expect(await p.locator("#reboot").isVisible()).toBe(false);
    } finally {
      await p.close();
    }
  });
});

/**
 * The demo for everyone: URL parameters checked before anything runs, keyboard use (setup in reading
 * order, a documented key out of the terminal), axe-core (no serious or critical finding before boot,
 * after boot, after an inflate), a phone viewport with nothing clipped, the guest told the terminal's
 * real size, and boot progress that says what happens and downloads what it announces.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { artifactPath, chromiumMissing, DIST } from "../../devkit/browser.js";
import { axeFindings, runInTerminal, waitGuestSize, waitReady } from "../../devkit/demo-page.js";
import { useDemoSite } from "./demo-site.js";

const missing = chromiumMissing();
if (missing) console.warn(`SKIP test/browser/demo-access.test.ts: ${missing}`);

/** Visible controls and headings whose box is not wholly inside the viewport's width, or hidden by an ancestor's clipping. */
async function clipped(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const vw = document.documentElement.clientWidth;
    const sel = "button, input, select, label, h1, h2, legend, a, [role=status], [role=progressbar], code";
    for (const el of document.querySelectorAll<HTMLElement>(sel)) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || el.closest("[hidden], .sr-only, .xterm") || getComputedStyle(el).visibility === "hidden") continue;
      const name = `${el.tagName.toLowerCase()}#${el.id || ""}.${el.className || ""} "${(el.textContent ?? "").trim().slice(0, 30)}"`;
      if (r.left < -0.5 || r.right > vw + 0.5) {
        out.push(`${name}: x ${r.left.toFixed(0)}..${r.right.toFixed(0)} outside 0..${vw}`);
        continue;
      }
      // Clipped by an ancestor that hides overflow?
      for (let a = el.parentElement; a; a = a.parentElement) {
        const cs = getComputedStyle(a);
        if (cs.overflowX === "visible" && cs.overflowY === "visible") continue;
        const ar = a.getBoundingClientRect();
        if (cs.overflowX !== "visible" && (r.left < ar.left - 0.5 || r.right > ar.right + 0.5)) out.push(`${name}: cut by ${a.tagName}.${a.className} horizontally`);
        if (cs.overflowY === "hidden" && (r.top < ar.top - 0.5 || r.bottom > ar.bottom + 0.5)) out.push(`${name}: cut by ${a.tagName}.${a.className} vertically`);
        break;
      }
    }
    return out;
  });
}

/** The ids (or text) of the elements Tab visits from the top of the page, `n` steps. */
async function tabOrder(page: Page, n: number): Promise<string[]> {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    await page.keyboard.press("Tab");
    seen.push(await page.evaluate(() => {
      const e = document.activeElement as HTMLInputElement | null;
      return e ? e.id || e.name || e.textContent?.trim() || e.tagName : "none";
    }));
  }
  return seen;
}

describe.skipIf(missing !== null)("demo access in Chromium", () => {
  const site = useDemoSite({ width: 1280, height: 800 });

  const open = async (query: string) => {
    const p = await site.browser.context.newPage();
    await p.goto(`${site.server.url}index.html${query}`);
    await p.waitForFunction(() => window.__demo !== undefined, undefined, { timeout: 30_000 });
    return p;
  };

  it("unknown features and parameters are named in a visible warning and ignored; the page stays alive", async () => {
    const p = await open("?features=bogus,stats,alsobad&colour=red");
    try {
      const problems = p.locator("#setup-problems");
      await problems.waitFor({ state: "visible" });
      const text = await problems.innerText();
      expect(text).toMatch(/unknown balloon features ignored: bogus, alsobad/);
      expect(text).toMatch(/unknown URL parameter ignored: colour/);
      expect(await p.locator("#setup-features input:checked").evaluateAll((xs) => xs.map((x) => (x as HTMLInputElement).name))).toEqual(["stats"]);
      // Boot runs the page's own handler (no navigation to "/?").
      const url = p.url();
      await p.locator("#boot").click();
      await p.waitForFunction(() => window.__demo.state !== "setup", undefined, { timeout: 10_000 });
      expect(p.url()).toBe(url);
    } finally {
      await p.close();
    }
  });

  it("memory out of range or not a number is refused with the allowed range", async () => {
    const p = await open("?memory=abc");
    try {
      expect(await p.locator("#setup-problems").innerText()).toMatch(/memory=abc refused: .* from 72 to 890/);
      expect(await p.locator("#setup-memory").inputValue()).toBe("256");
      expect(await p.locator("#setup-memory option", { hasText: "abc" }).count()).toBe(0);
    } finally {
      await p.close();
    }
    const q = await open("?memory=4096&autoboot");
    try {
      // autoboot with a refused parameter: the error, not silence and not a boot.
      await q.locator("#error").waitFor({ state: "visible", timeout: 10_000 });
      expect(await q.locator("#error-title").innerText()).toMatch(/URL parameters were refused/);
      expect(await q.locator("#error-text").innerText()).toMatch(/memory=4096 refused: .* from 72 to 890/);
      expect(await q.evaluate(() => window.__demo.state)).toBe("setup");
      await q.locator("#error-retry").click();
      await q.locator("#setup-form").waitFor({ state: "visible" });
    } finally {
      await q.close();
    }
  });

  it("before boot: setup controls in reading order, the terminal out of the tab order; axe finds nothing serious", async () => {
    const p = await open("");
    try {
      const order = await tabOrder(p, 4);
      expect(order).toEqual(["setup-memory", "must-tell-host", "stats", "deflate-on-oom"]);
      expect(await p.locator("#terminal").getAttribute("inert")).not.toBeNull();
      const axe = await axeFindings(p);
      expect(axe).toEqual({ serious: [], critical: [] });
    } finally {
      await p.close();
    }
  });

  it("boot progress names each step, the bar is a progressbar, and the stated download size is what is transferred", async () => {
    const p = await site.browser.context.newPage();
    try {
      await p.goto(`${site.server.url}index.html?memory=96`);
      await p.waitForFunction(() => window.__demo?.statedDownloadBytes !== null, undefined, { timeout: 30_000 });
      const stated = await p.evaluate(() => window.__demo.statedDownloadBytes!);
      const statedText = await p.locator("#setup-size").innerText();
      expect(statedText).toContain(`Downloads ${(stated / 1048576).toFixed(1)} MiB`);
      // Record every label the progress shows.
      await p.evaluate(() => {
        const w = window as unknown as { labels: string[] };
        w.labels = [];
        const label = document.getElementById("progress-label")!;
        new MutationObserver(() => {
          const t = label.textContent ?? "";
          const bar = document.getElementById("progress-bar")!;
          w.labels.push(`${t} [${bar.getAttribute("role")} ${bar.getAttribute("aria-valuenow") ?? "-"}]`);
        }).observe(label, { childList: true, characterData: true, subtree: true });
      });
      const bootAt = await p.evaluate(() => performance.now());
      await p.locator("#boot").click();
      await waitReady(p);
      const labels = await p.evaluate(() => (window as unknown as { labels: string[] }).labels);
      const first = (re: RegExp) => labels.findIndex((l) => re.test(l));
      const dl = first(/^downloading the guest images: [\d.]+ of [\d.]+ MiB \[progressbar \d+\]/);
      const emu = first(/^starting the emulator/);
      const linux = first(/^booting Linux: \d+ kernel log lines/);
      const prompt = first(/^prompt \[progressbar 100\]/);
      expect(dl, labels.join("\n")).toBeGreaterThanOrEqual(0);
      expect(emu).toBeGreaterThan(dl);
      expect(linux).toBeGreaterThan(emu);
      expect(prompt).toBeGreaterThan(linux);
      // The bar is never full before the guest runs: 100 only at the prompt.
      expect(labels.slice(0, linux).some((l) => /\[progressbar 100\]/.test(l) && !/^downloading/.test(l))).toBe(false);
      // The total is the real one from the first byte on (it does not grow as files answer).
      const manifest = JSON.parse(readFileSync(join(DIST, "guest", "manifest.json"), "utf8")) as { outputs: Record<string, { size: number }> };
      const images = Object.values(manifest.outputs).reduce((n, o) => n + o.size, 0);
      const totals = new Set(labels.filter((l) => l.startsWith("downloading") && l.includes(" of ")).map((l) => /of ([\d.]+) MiB/.exec(l)![1]));
      expect([...totals]).toEqual([(images / 1048576).toFixed(1)]);
      // From the page's own Resource Timing (Playwright's request events can arrive after the prompt).
      const transferred = await p.evaluate((t0) =>
        (performance.getEntriesByType("resource") as PerformanceResourceTiming[])
          .filter((e) => e.startTime >= t0 && e.name.startsWith("http"))
          .reduce((n, e) => n + e.encodedBodySize, 0), bootAt);
      expect(Math.abs(transferred - stated) / stated, `stated ${stated}, transferred ${transferred}`).toBeLessThan(0.05);
    } finally {
      await p.close();
    }
  });

  it("keyboard after boot: Tab goes to the guest, Esc then Tab leaves the terminal; status is live; axe after boot and after an inflate", async () => {
    const p = await open("?autoboot&memory=128&features=stats,reporting");
    try {
      await waitReady(p);
      expect(await p.locator("#status").getAttribute("aria-live")).toBe("polite");
      expect(await p.locator("#status").getAttribute("role")).toBe("status");
      const inTerminal = () => p.evaluate(() => document.getElementById("terminal")!.contains(document.activeElement));
      await p.locator("#terminal").click();
      expect(await inTerminal()).toBe(true);
      await p.keyboard.press("Tab");
      expect(await inTerminal()).toBe(true);
      await p.keyboard.press("Escape");
      await p.keyboard.press("Tab");
      expect(await inTerminal()).toBe(false);
      expect(await p.locator("#term-keys").innerText()).toMatch(/Esc\s*then\s*Tab/);
      // Shift+Tab the other way, after Esc.
      await p.locator("#terminal").click();
      await p.keyboard.press("Escape");
      await p.keyboard.press("Shift+Tab");
      expect(await inTerminal()).toBe(false);
      // Each chart is a labelled figure with a text view of its values.
      const figures = await p.locator("figure.chart").evaluateAll((fs) => fs.map((f) => [f.querySelector("figcaption")?.textContent, f.querySelector(".chart-text")?.textContent]));
      expect(figures).toHaveLength(4);
      for (const [cap, text] of figures) {
        expect(cap).toBeTruthy();
        expect(text).toMatch(/MiB|pages\/s/);
      }
      expect(await axeFindings(p)).toEqual({ serious: [], critical: [] });
      await p.evaluate(() => window.__demo.controls!.setTargetMiB(32));
      await p.waitForFunction(() => window.__demo.balloon!.actual === 32 * 256, undefined, { timeout: 120_000 });
      expect(await axeFindings(p)).toEqual({ serious: [], critical: [] });
    } finally {
      await p.close();
    }
  });

  it("phone 390x844: nothing clipped before or after boot; the guest knows the terminal's size, also after a resize", async () => {
    const p = await site.browser.context.newPage();
    try {
      await p.setViewportSize({ width: 390, height: 844 });
      await p.goto(`${site.server.url}index.html?memory=128&features=stats`);
      await p.waitForFunction(() => window.__demo !== undefined);
      expect(await clipped(p)).toEqual([]);
      await p.screenshot({ path: artifactPath("demo-phone-setup.png"), fullPage: true });
      await p.locator("#boot").click();
      await waitReady(p);
      expect(await clipped(p)).toEqual([]);
      await p.screenshot({ path: artifactPath("demo-phone-booted.png"), fullPage: true });
      const [rows, cols] = await waitGuestSize(p);
      expect(cols).toBeLessThan(60);
      const out = await runInTerminal(p, "echo size=$(stty size)", /size=\d+ \d+/);
      expect(out).toContain(`size=${rows} ${cols}`);
      // The hidden `stty` never shows in the terminal.
      expect(await p.evaluate(() => window.__demo.text())).not.toMatch(/stty rows/);
      await p.setViewportSize({ width: 844, height: 390 });
      await p.waitForFunction((c) => window.__demo.terminal.term.cols !== c, cols, { timeout: 10_000 });
      const [rows2, cols2] = await waitGuestSize(p);
      expect(cols2).toBeGreaterThan(cols);
      const out2 = await runInTerminal(p, "echo size=$(stty size)", /size=\d+ \d+/);
      expect(out2).toContain(`size=${rows2} ${cols2}`);
    } finally {
      await p.close();
    }
  });
});

/**
 * `<v86-balloon-vm>` on a documentation page, from the library build: restore from a balloon-compacted
 * state (shell answers, balloon still works, kernel never downloaded), mismatched / truncated / missing
 * states refused with a named error while the page lives on, N elements sharing one download of each
 * file, `commands` without terminal replies, lazy start, pause off screen, no focus stealing, style
 * isolation and theming, and removal that frees the VM.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSnapshot } from "../../src/node/snapshot.js";
import { waitElementReady } from "./embed-page.js";
import { embedCycles, rendererMemory, type CycleLevels } from "../../devkit/embed-memory.js";
import { chromiumMissing, launchChromium, pageErrors, ROOT, serveStatic, type Browser, type StaticServer } from "../../devkit/browser.js";

const missing = chromiumMissing();
if (missing) console.warn(`SKIP test/browser/embed-docs.test.ts: ${missing}`);

const SCRIPT = `<script type="module" src="./dist/lib/v86-balloon.js"></script>`;
const page = (body: string, head = "") =>
  `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>docs</title>${head}${SCRIPT}\n${body}`;

type VMEl = HTMLElement & {
  text(): string;
  vm: { run(cmd: string): Promise<string>; emulator: object } | null;
  balloon: { setTarget(p: number): void; actual: number; statsInterval: number; counters(): { statsSamples: number } } | null;
  handle: { paused: boolean } | null;
};

/** The error overlay text of `#id`, once shown. */
async function errorText(p: Page, id: string): Promise<string> {
  const h = await p.waitForFunction((id) => {
    const o = document.getElementById(id)?.shadowRoot?.querySelector(".v86b-overlay");
    return o?.querySelector(".v86b-error") ? o.textContent : false;
  }, id, { timeout: 60_000 });
  return String(await h.jsonValue());
}

function requested(p: Page): Promise<string[]> {
  return p.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name));
}

describe.skipIf(missing !== null)("<v86-balloon-vm> on a docs page", () => {
  let dir: string;
  let server: StaticServer;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "v86-balloon-docs-"));
    // The library build beside the pages; its default images (../../public/guest/) come from the repo.
    await build({ configFile: join(ROOT, "vite.lib.config.ts"), logLevel: "error", build: { outDir: join(dir, "dist/lib"), emptyOutDir: true } });
    const snap = await makeSnapshot({ memoryMiB: 128, commands: "echo made > /tmp/marker" });
    writeFileSync(join(dir, "guest.state"), snap.file);
    writeFileSync(join(dir, "truncated.state"), snap.file.subarray(0, snap.file.length >> 1));
    server = await serveStatic(dir, ROOT);
    browser = await launchChromium({ viewport: { width: 1000, height: 700 } });
  }, 400_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function open(name: string, html: string): Promise<Page> {
    writeFileSync(join(dir, name), html);
    const p = browser.page;
    pageErrors(p).length = 0; // one page serves every test: each starts with no errors
    await p.emulateMedia({ colorScheme: "dark" });
    await p.goto(`${server.url}${name}`);
    return p;
  }

  it("restores a saved state: the shell answers, the balloon works, the kernel is never downloaded", async () => {
    const p = await open("state.html", page(`<v86-balloon-vm id="s" state="guest.state" autostart></v86-balloon-vm>`));
    await waitElementReady(p, "s");
    const out = await p.evaluate(() => (document.getElementById("s") as VMEl).vm!.run("cat /tmp/marker; echo ok"));
    expect(out).toContain("made"); // the state's guest, not a fresh boot
    expect(out).toContain("ok");
    const actual = await p.evaluate(async () => {
      const b = (document.getElementById("s") as VMEl).balloon!;
      b.setTarget(4096);
      const end = Date.now() + 60_000;
      while (b.actual < 4096 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      return b.actual;
    });
    expect(actual).toBe(4096);
    // The state was saved without stats polling; the page's own interval applies, and samples arrive.
    const stats = await p.evaluate(async () => {
      const b = (document.getElementById("s") as VMEl).balloon!;
      const first = b.counters().statsSamples;
      const end = Date.now() + 30_000;
      while (b.counters().statsSamples < first + 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      return { interval: b.statsInterval, samples: b.counters().statsSamples - first };
    });
    expect(stats.interval).toBe(1);
    expect(stats.samples).toBeGreaterThanOrEqual(2);
    const urls = await requested(p);
    expect(urls.filter((u) => /bzImage|initramfs/.test(u))).toEqual([]);
    expect(pageErrors(p)).toEqual([]);
  });

  it("refuses mismatched, truncated and missing states by name; the page and its other VM live on", async () => {
    const p = await open(
      "bad.html",
      page(`<v86-balloon-vm id="ok" state="guest.state" autostart></v86-balloon-vm>
<v86-balloon-vm id="mem" state="guest.state" memory="96" autostart></v86-balloon-vm>
<v86-balloon-vm id="feat" state="guest.state" features="stats" autostart></v86-balloon-vm>
<v86-balloon-vm id="trunc" state="truncated.state" autostart></v86-balloon-vm>
<v86-balloon-vm id="gone" state="no-such.state" autostart></v86-balloon-vm>`),
    );
    expect(await errorText(p, "mem")).toMatch(/saved state cannot be used.*saved with 128 MiB of guest RAM, this VM asks for 96 MiB/s);
    expect(await errorText(p, "feat")).toMatch(/saved with balloon features ".*hinting.*", this VM offers "stats"/);
    expect(await errorText(p, "trunc")).toMatch(/saved state cannot be used.*(truncated|not valid gzip)/s);
    expect(await errorText(p, "gone")).toContain(`could not load the state file ${server.url}no-such.state: HTTP 404`);
    await waitElementReady(p, "ok");
    expect(await p.evaluate(() => (document.getElementById("ok") as VMEl).vm!.run("echo alive"))).toContain("alive");
    expect(pageErrors(p).filter((e) => !e.includes("no-such.state"))).toEqual([]);
  });

  it("floor: a target beyond it is held there; a bad floor (or feature) is shown in the element, which reports it", async () => {
    const p = await open(
      "floor.html",
      page(
        `<v86-balloon-vm id="f" state="guest.state" floor="100" autostart></v86-balloon-vm>
<v86-balloon-vm id="badfloor" state="guest.state" floor="lots" autostart></v86-balloon-vm>
<v86-balloon-vm id="badfeat" features="stats,bogus" autostart></v86-balloon-vm>`,
        // Before the module defines the element: hears every v86-error from the start.
        `<script>window.errs = []; document.addEventListener("v86-error", (e) => errs.push(e.target.id + ": " + e.detail.message), true);</script>`,
      ),
    );
    expect(await errorText(p, "badfloor")).toMatch(/option of this VM is not valid.*floor "lots" is not "auto", "off" or a size in MiB/s);
    expect(await errorText(p, "badfeat")).toMatch(/option of this VM is not valid.*bogus/s);
    expect(await p.evaluate(() => (window as unknown as { errs: string[] }).errs.sort())).toEqual([expect.stringMatching(/^badfeat: .*bogus/), expect.stringMatching(/^badfloor: floor "lots"/)]);
    await waitElementReady(p, "f");
    type Host = { floor: unknown; limit(): { source: string; maxPages: number }; setTarget(p: number): number; target: number; actual: number; lastClamp: { requested: number } | null };
    const r = await p.evaluate(async () => {
      const el = document.getElementById("f") as HTMLElement & { balloon: Host; vm: { run(c: string): Promise<string> } };
      const b = el.balloon;
      // Precondition: the attribute reached the host as a fixed 100 MiB floor (128 MiB guest: 28 MiB may go).
      const before = { floor: b.floor, source: b.limit().source, maxPages: b.limit().maxPages };
      b.setTarget(32768); // all of the guest's RAM
      const held = { target: b.target, requested: b.lastClamp?.requested };
      const end = Date.now() + 60_000;
      while (b.actual < b.target && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      return { before, held, actual: b.actual, alive: await el.vm.run("echo alive") };
    });
    expect(r.before).toEqual({ floor: 100 * 1048576, source: "fixed", maxPages: 7168 });
    expect(r.held).toEqual({ target: 7168, requested: 32768 });
    expect(r.actual).toBe(7168);
    expect(r.alive).toContain("alive");
    // The element's own balloon input: asked for all 128 MiB, it shows the 28 MiB the floor allows.
    const shown = await p.evaluate(() => {
      const input = document.getElementById("f")!.shadowRoot!.querySelector("input")!;
      input.value = "128";
      input.dispatchEvent(new Event("change"));
      return input.value;
    });
    expect(shown).toBe("28");
    await p.waitForFunction(() => document.getElementById("f")!.shadowRoot!.querySelector(".v86b-status")!.textContent!.includes("held by the floor"), null, { timeout: 10_000 });
  });

  it("three elements fetch each file once, and commands leave no terminal replies in the shell", async () => {
    const els = [1, 2, 3].map((i) => `<v86-balloon-vm id="v${i}" style="height:150px" state="guest.state" autostart compact commands="sleep 1; echo hi-$((${i} + 1))"></v86-balloon-vm>`);
    const p = await open("three.html", page(els.join("\n")));
    for (const i of [1, 2, 3]) await waitElementReady(p, `v${i}`);
    for (const i of [1, 2, 3]) {
      const text = await p.waitForFunction((i) => {
        const t = (document.getElementById(`v${i}`) as VMEl).text();
        return new RegExp(`hi-${i + 1}\\n`).test(t) ? t : false;
      }, i, { timeout: 60_000 });
      expect(String(await text.jsonValue())).not.toMatch(/\^\[|\d+;\d+R/);
    }
    const urls = await requested(p);
    for (const file of ["guest.state", "v86.wasm", "bios.bin", "vgabios.bin", "manifest.json"]) {
      expect(urls.filter((u) => u.endsWith(`/${file}`)), file).toHaveLength(1);
    }
  });

  it("lazy starts when scrolled into view, pauses off screen, and never steals focus", async () => {
    const p = await open(
      "lazy.html",
      page(`<input id="field" autofocus><div style="height:2500px"></div>
<v86-balloon-vm id="lz" state="guest.state" lazy></v86-balloon-vm><div style="height:2500px"></div>`),
    );
    await p.focus("#field");
    // Off screen: nothing starts.
    expect(await p.evaluate(() => (document.getElementById("lz") as VMEl).vm)).toBeNull();
    await p.evaluate(() => document.getElementById("lz")!.scrollIntoView());
    await waitElementReady(p, "lz");
    expect(await p.evaluate(() => document.activeElement?.id)).toBe("field");
    await p.evaluate(() => scrollTo(0, 0));
    await p.waitForFunction(() => (document.getElementById("lz") as VMEl).handle?.paused === true, null, { timeout: 10_000 });
    await p.evaluate(() => document.getElementById("lz")!.scrollIntoView());
    await p.waitForFunction(() => (document.getElementById("lz") as VMEl).handle?.paused === false, null, { timeout: 10_000 });
    expect(await p.evaluate(() => (document.getElementById("lz") as VMEl).vm!.run("echo back"))).toContain("back");
  });

  it("keeps its styles to itself, takes --v86b-* custom properties, and follows prefers-color-scheme", async () => {
    const p = await open(
      "theme.html",
      page(
        `<v86-balloon-vm id="t" autostart state="guest.state" style="--v86b-border: rgb(1, 2, 3)"></v86-balloon-vm><div class="v86b" id="mine">page div</div>`,
        `<style>.v86b { display: none !important; } div { color: rgb(255, 0, 0) }</style>`,
      ),
    );
    await waitElementReady(p, "t");
    const look = () =>
      p.evaluate(() => {
        const inner = document.getElementById("t")!.shadowRoot!.querySelector(".v86b")!;
        const s = getComputedStyle(inner);
        return { display: s.display, color: s.color, border: s.borderTopColor, bg: s.backgroundColor };
      });
    const dark = await look();
    expect(dark.display).toBe("flex"); // the page's .v86b rule does not reach inside
    expect(dark.color).not.toBe("rgb(255, 0, 0)");
    expect(dark.border).toBe("rgb(1, 2, 3)");
    expect(await p.evaluate(() => getComputedStyle(document.getElementById("mine")!).display)).toBe("none"); // ours do not leak out
    await p.emulateMedia({ colorScheme: "light" });
    const light = await look();
    expect(light.bg).not.toBe(dark.bg);
    expect(light.bg).toBe("rgb(251, 251, 253)");
  });

  /** Runs add/remove cycles; asserts that each live guest shows in the renderer's memory and its removal frees it; returns the levels. */
  async function cyclesFreeing(p: Page, cycles: number, attrs: Record<string, string>): Promise<{ levels: CycleLevels; report: string }> {
    const before = rendererMemory();
    expect(before.pids.length, "no Chromium renderer process found under this test").toBeGreaterThan(0);
    // Each guest writes WROTE MiB, so a VM whose memory outlived its element would show in the renderer.
    const levels = await embedCycles(browser.context, p, { cycles, attrs, command: `dd if=/dev/zero of=/tmp/fill bs=1M count=${WROTE} 2>/dev/null; echo wrote` });
    const fmt = (l: number[]) => l.map((x) => x.toFixed(0)).join(", ");
    const report = `renderer PSS (MiB) before ${before.pssMiB.toFixed(0)}; live ${fmt(levels.livePssMiB)}; after removal ${fmt(levels.pssMiB)}; JS heap ${fmt(levels.jsHeapMiB)}`;
    for (let i = 0; i < cycles; i++) {
      // Precondition: the measure sees a live guest's RAM (else it could not see one leak).
      expect(levels.livePssMiB[i] - (i ? levels.pssMiB[i - 1] : before.pssMiB), `cycle ${i + 1}: a live VM adds its RAM. ${report}`).toBeGreaterThan(WROTE);
      // Effect: its removal gives that memory back.
      expect(levels.livePssMiB[i] - levels.pssMiB[i], `cycle ${i + 1}: removal frees the VM. ${report}`).toBeGreaterThan(WROTE);
    }
    return { levels, report };
  }
  const WROTE = 64;

  it("removing the element stops its VM and frees its memory: 5 add/remove cycles grow the tab by less than one guest", async () => {
    const p = await open("cycles.html", page(`<div id="slot"></div>`));
    const { levels, report } = await cyclesFreeing(p, 5, { state: "guest.state" });
    expect(levels.pssMiB[4] - levels.pssMiB[0], `growth over 5 cycles, less than one guest's written RAM. ${report}`).toBeLessThan(WROTE);
    expect(levels.jsHeapMiB[4] - levels.jsHeapMiB[0], report).toBeLessThanOrEqual(20);
    expect(pageErrors(p)).toEqual([]);
  });

  it("a booted element (balloon stats polling) is freed on removal too", async () => {
    // The stats queue's polling timer once kept every removed booted VM, with its RAM, alive.
    const p = await open("boot-cycles.html", page(`<div id="slot"></div>`));
    await cyclesFreeing(p, 2, { memory: "128", features: "stats,reporting" });
    expect(pageErrors(p)).toEqual([]);
  });
});

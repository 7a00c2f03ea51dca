/**
 * The published package, used as a newcomer would: `npm pack` (prepack builds it), install the tarball
 * into a fresh temporary project, then (a) a Vite app importing "v86-balloon" boots in Chromium, built
 * and under Vite's dev server, (b) a
 * plain page with one script tag to the installed module boots, (c) plain Node (no tsx) imports
 * "v86-balloon/node" and inflates 16 MiB, (d) `npx v86-balloon test` runs a guest test from the
 * installed package, in Node and with `--browser` in Chromium (a user's kernel by path), (e) the types resolve under moduleResolution bundler and node16, and a missing
 * image is reported with its URL, (f) `npx v86-balloon snapshot` writes a state file a plain page restores.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumMissing, launchChromium, pageErrors, ROOT, serveStatic, type Browser } from "../devkit/browser.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
const missing = chromiumMissing();

function run(cmd: string, args: string[], cwd: string, timeout = 240_000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false" } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

type VMEl = HTMLElement & { ready: Promise<unknown>; text(): string };

/** Waits until the terminal text of the element `selector` (null: the page's `window.vm` from mount()) matches `pattern`. */
async function waitText(page: Page, selector: string | null, pattern: RegExp, timeoutMs = 150_000): Promise<string> {
  const handle = await page.waitForFunction(
    ([sel, src]) => {
      const el = sel ? (document.querySelector(sel) as VMEl | null) : null;
      const text = el?.text?.() ?? (window as unknown as { vm?: { text(): string } }).vm?.text() ?? "";
      return new RegExp(src).test(text) ? text : false;
    },
    [selector, pattern.source] as const,
    { timeout: timeoutMs, polling: 250 },
  );
  return String(await handle.jsonValue());
}

describe("the npm package, installed from its tarball", () => {
  let work: string;
  let app: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "v86-balloon-pkg-"));
    run("npm", ["pack", "--pack-destination", work], ROOT);
    const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
    expect(tarball, "npm pack wrote no tarball").toBeTruthy();
    app = join(work, "app");
    execFileSync("mkdir", [app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    run("npm", ["install", "--prefer-offline", join(work, tarball!)], app);
  }, 400_000);

  afterAll(async () => {
    await browser?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("ships the compiled entry points, the guest images and both wasm files, and no TypeScript sources", () => {
    const root = join(app, "node_modules/v86-balloon");
    const files = run("find", [".", "-type", "f"], root).split("\n");
    for (const f of ["./dist/lib/v86-balloon.js", "./dist/lib/v86.wasm", "./lib/node/index.js", "./lib/harness/cli.js", "./build/hotpath.wasm", "./public/guest/bzImage.bin", "./public/guest/initramfs.cpio", "./public/guest/bios.bin", "./guest/initramfs/tests/lib.sh"]) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
  });

  it("(c) plain Node imports v86-balloon/node, boots and inflates 16 MiB", () => {
    writeFileSync(
      join(app, "inflate.mjs"),
      `import { startNodeBalloonVM } from "v86-balloon/node";
const { vm, host } = await startNodeBalloonVM({ memoryMiB: 128 });
if (!host.features.negotiatedNames.includes("VERSION_1")) throw new Error("driver did not negotiate: " + host.features.negotiatedNames);
const pages = (16 << 20) / 4096;
host.setTarget(pages);
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("inflate timed out at " + host.actual + " pages")), 120000);
  const check = () => { if (host.actual >= pages) { clearTimeout(timer); resolve(); } };
  host.on("actual", check);
  check();
});
console.log("inflated " + host.actual + " pages; guest " + (await vm.run("grep MemTotal /proc/meminfo")).trim());
await vm.destroy();
`,
    );
    const out = run("node", ["inflate.mjs"], app);
    expect(out).toMatch(/inflated 4096 pages; guest MemTotal:/);
  });

  it("(d) npx v86-balloon test runs a guest test from the installed package", () => {
    const out = run("npx", ["v86-balloon", "test", "--filter", "balloon-present"], app);
    expect(out).toMatch(/node: 1 passed, 0 failed/);
    // The snapshot command is compiled and dispatched too (making a state is test/browser/embed-docs.test.ts's).
    expect(run("npx", ["v86-balloon", "snapshot", "--help"], app)).toMatch(/usage: v86-balloon snapshot --out FILE/);
  });

  // Before the Chromium tests below open their browser: the CLI takes the one-Chromium-at-a-time lock itself.
  it.skipIf(missing !== null)("(d) npx v86-balloon test --browser runs a guest test in Chromium from the installed package (no Vite, no tsx)", () => {
    // Neither is installed in the app (test (a) adds Vite later): the page comes prebuilt in the tarball.
    for (const absent of ["tsx", "vite"]) expect(() => run("node", ["--input-type=module", "-e", `await import("${absent}")`], app), absent).toThrow();
    // Without the optional playwright-core (npm install --omit=optional) the CLI says what to install.
    const pw = join(app, "node_modules/playwright-core");
    renameSync(pw, `${pw}.away`);
    try {
      const r = spawnSync("npx", ["v86-balloon", "test", "--browser", "--filter", "balloon-present"], { cwd: app, encoding: "utf8", timeout: 120_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^v86-balloon: --browser drives Debian's Chromium through the playwright-core package.*install it with `npm install playwright-core`\n$/s);
    } finally {
      renameSync(`${pw}.away`, pw);
    }
    const kernel = join(app, "node_modules/v86-balloon/public/guest/bzImage.bin");
    const out = run("npx", ["v86-balloon", "test", "--browser", "--kernel", kernel, "--filter", "balloon-present"], app);
    expect(out).toMatch(/chromium: 1 passed, 0 failed/);
  });

  it("(e) the types resolve under moduleResolution bundler and node16", () => {
    writeFileSync(
      join(app, "use.ts"),
      `import { mount, FEATURES, type MountOptions } from "v86-balloon";
import { startNodeBalloonVM, type BalloonHost } from "v86-balloon/node";
import { runTests } from "v86-balloon/harness";
const o: MountOptions = { memory: 96, features: ["stats", "hinting"] };
export const used = [mount, FEATURES, o, startNodeBalloonVM, runTests] as const;
export type H = BalloonHost;
`,
    );
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const common = ["--noEmit", "--strict", "--target", "es2022", "--lib", "es2022,dom", "--types", "node", "--typeRoots", join(ROOT, "node_modules/@types"), "--skipLibCheck", "use.ts"];
    run("node", [tsc, "--module", "esnext", "--moduleResolution", "bundler", ...common], app);
    run("node", [tsc, "--module", "node16", "--moduleResolution", "node16", ...common], app);
  });

  let viteReady = false;
  /** The Vite app of (a): a page that mounts a VM, and Vite itself. */
  function viteApp(): void {
    if (viteReady) return;
    writeFileSync(join(app, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>vite app</title>
<div id="box" style="height:300px"></div><script type="module" src="./main.js"></script>`);
    writeFileSync(join(app, "main.js"), `import { mount } from "v86-balloon";
window.vm = mount(document.getElementById("box"), { memory: 96, compact: true, commands: "echo vite-$((40 + 2))" });`);
    run("npm", ["install", "--prefer-offline", `vite@${pkg.devDependencies.vite}`], app);
    viteReady = true;
  }

  describe.skipIf(missing !== null)("in Chromium", () => {
    beforeAll(async () => {
      browser = await launchChromium({ viewport: { width: 1000, height: 800 } });
    });

    it("(a) a Vite app that imports v86-balloon builds and boots to a prompt", async () => {
      viteApp();
      run("npx", ["vite", "build", "--logLevel", "error"], app);
      const server = await serveStatic(join(app, "dist"));
      try {
        const page = browser!.page;
        pageErrors(page).length = 0; // one page serves every test: each starts with no errors
        await page.goto(server.url);
        await waitText(page, null, /vite-42/);
        expect(pageErrors(page)).toEqual([]);
      } finally {
        await browser!.page.goto("about:blank");
        await server.close();
      }
    });

    it("(a) the same app under Vite's dev server (what VitePress runs for a docs author) boots to a prompt", async () => {
      viteApp();
      const dev = spawn("npx", ["vite", "--port", "0", "--strictPort", "false", "--host", "127.0.0.1"], { cwd: app, stdio: ["ignore", "pipe", "pipe"] });
      try {
        let out = "";
        const url = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`vite dev server did not start:\n${out}`)), 120_000);
          const onData = (d: Buffer) => {
            out += d.toString();
            const m = /Local:\s+(http:\/\/\S+)/.exec(out.replace(/\x1b\[[0-9;]*m/g, ""));
            if (m) {
              clearTimeout(timer);
              resolve(m[1]!);
            }
          };
          dev.stdout.on("data", onData);
          dev.stderr.on("data", onData);
        });
        const page = browser!.page;
        pageErrors(page).length = 0;
        const failed: string[] = [];
        const onResponse = (r: { status(): number; url(): string }) => {
          if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
        };
        page.on("response", onResponse);
        await page.goto(url);
        try {
          await waitText(page, null, /vite-42/);
        } catch (e) {
          throw new Error(`${(e as Error).message}\nfailed responses:\n${failed.join("\n")}`);
        } finally {
          page.off("response", onResponse);
        }
        expect(failed).toEqual([]);
        expect(pageErrors(page)).toEqual([]);
      } finally {
        await browser!.page.goto("about:blank");
        dev.kill("SIGTERM");
      }
    }, 300_000);

    it("(b) a plain page with one script tag to the installed module boots; a missing image names its URL", async () => {
      writeFileSync(join(app, "plain.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>plain</title>
<script type="module" src="./node_modules/v86-balloon/dist/lib/v86-balloon.js"></script>
<v86-balloon-vm id="ok" memory="96" compact autostart commands="echo plain-$((40 + 2))"></v86-balloon-vm>
<v86-balloon-vm id="bad" memory="96" autostart images="./no-such-dir/"></v86-balloon-vm>`);
      const server = await serveStatic(app);
      try {
        const page = browser!.page;
        pageErrors(page).length = 0;
        await page.goto(`${server.url}plain.html`);
        await waitText(page, "#ok", /plain-42/);
        const error = await page.waitForFunction(() => document.querySelector("#bad")?.shadowRoot?.querySelector(".v86b-overlay strong")?.parentElement?.textContent ?? document.querySelector("#bad .v86b-overlay")?.textContent, null, { timeout: 60_000 });
        const text = String(await error.jsonValue());
        expect(text).toContain("A guest file could not be loaded");
        expect(text).toContain(`${server.url}no-such-dir/manifest.json`);
        expect(text).toContain("HTTP 404");
        expect(pageErrors(page).filter((e) => !e.includes("no-such-dir"))).toEqual([]);
      } finally {
        await browser!.page.goto("about:blank");
        await server.close();
      }
    });

    it("(f) npx v86-balloon snapshot from the installed package writes a state that a plain page restores", async () => {
      const out = run("npx", ["v86-balloon", "snapshot", "--memory", "96", "--commands", "echo from-the-cli > /tmp/marker", "--out", "docs.state"], app, 300_000);
      expect(out).toMatch(/docs\.state: [\d.]+ MiB gzip/);
      expect(out).toMatch(/the balloon removed [\d.]+ %/);
      writeFileSync(join(app, "state.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>state</title>
<script type="module" src="./node_modules/v86-balloon/dist/lib/v86-balloon.js"></script>
<v86-balloon-vm id="s" state="docs.state" compact autostart commands="cat /tmp/marker"></v86-balloon-vm>`);
      const server = await serveStatic(app);
      try {
        const page = browser!.page;
        pageErrors(page).length = 0;
        await page.goto(`${server.url}state.html`);
        await waitText(page, "#s", /from-the-cli/);
        expect(pageErrors(page)).toEqual([]);
      } finally {
        await browser!.page.goto("about:blank");
        await server.close();
      }
    }, 400_000);
  });
});

// The harness with kernels a developer actually has, on real guests: the project's kernel built with
// virtio, virtio_pci and virtio_balloon as modules (test/fixtures/modular-kernel, made by
// `GUEST_VARIANT=modular guest/build.sh`, modules stored compressed), the pre-flight stop without
// --modules (read from the IKCONFIG in the image), a run with --modules, the "no driver bound" stop,
// panics before the shell and during a test, and the --bisect exit codes.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runTests } from "../src/harness/runner.js";
import { main } from "../src/harness/cli.js";
import { embeddedConfig, parseKernelConfig } from "../src/harness/kernel-image.js";
import { readModules } from "../src/harness/modules.js";
import { SUITE_DIR } from "../src/harness/files.js";
import { GUEST_DIR } from "../src/node/vm-node.js";
import { readFileSync } from "node:fs";

const FIX = fileURLToPath(new URL("./fixtures/modular-kernel/", import.meta.url));
const KERNEL = FIX + "bzImage";
const MODULES = FIX + "modules";
const haveFixture = existsSync(KERNEL);
const haveGuest = existsSync(GUEST_DIR + "bzImage.bin");
// Linux kicks the stats queue before DRIVER_OK (see test/guest-suite.test.ts).
const ALLOW = ["notify-before-driver-ok"];

/** Runs the CLI, returns [exit status, stderr]. */
async function cli(args: string[]): Promise<[number, string]> {
  const err: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return [await main(args), err.join("")];
  } finally {
    process.stderr.write = write;
  }
}

function script(dir: string, name: string, body: string): string {
  const f = join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}`);
  return f;
}

describe.skipIf(!haveFixture)("a modular kernel (fixture)", () => {
  it("reads the config embedded in the image and the modules' dependencies", () => {
    const cfg = parseKernelConfig(embeddedConfig(readFileSync(KERNEL))!);
    expect(cfg.get("CONFIG_VIRTIO_BALLOON")).toBe("m");
    expect(cfg.get("CONFIG_VIRTIO_PCI")).toBe("m");
    const { modules } = readModules(MODULES);
    const order = modules.map((m) => m.name);
    expect(order).toContain("virtio_balloon");
    for (const m of modules) for (const d of m.depends) expect(order.indexOf(d), `${d} before ${m.name}`).toBeLessThan(order.indexOf(m.name));
    expect(readdirSync(MODULES).some((f) => /\.ko\.(xz|gz)$/.test(f))).toBe(true);
  });

  it("pre-flight: stops before booting when the balloon is a module and no --modules is given", async () => {
    const [code, err] = await cli(["test", "--kernel", KERNEL, "--quiet"]);
    expect(code).toBe(2);
    expect(err).toMatch(/CONFIG_VIRTIO_BALLOON=m and no --modules given: pass --modules DIR/);
    expect(err).toMatch(/the config embedded in .*bzImage \(IKCONFIG\)/);
    expect((await cli(["test", "--kernel", KERNEL, "--bisect", "--quiet"]))[0]).toBe(125);
  });

  it("initramfs: a complete test initramfs with the modules and their loader", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "initramfs-")), "t.cpio");
    const [code, err] = await cli(["initramfs", "--kernel", KERNEL, "--modules", MODULES, "--out", out]);
    expect(code, err).toBe(0);
    expect(err).toMatch(/with modules \(load order\): .*virtio_balloon/);
    const list = execFileSync("cpio", ["-t", "--quiet", "-F", out]).toString();
    // cpio -t lists the first archive only: the project's userland is there; the modules come after it
    expect(list).toMatch(/^init$/m);
    expect(readFileSync(out).includes(Buffer.from("lib/modules/v86-balloon/load.sh"))).toBe(true);
    // pre-flight sees the modules in the image; the harness loads them (the project's /init may too)
    const r = await runTests({ kernel: KERNEL, initrd: out, files: [SUITE_DIR + "balloon-present.sh"], snapshotCache: false, allowDiagnostics: ALLOW, progress: false });
    expect(r.ok, r.cases.map((c) => c.failures.join("; ")).join("\n")).toBe(true);
  }, 300_000);

  it("--modules FILE.deb: modules and config come from a linux-image package", async () => {
    const root = mkdtempSync(join(tmpdir(), "deb-"));
    const pkg = join(root, "pkg");
    const moddir = join(pkg, "lib/modules/6.12.117/kernel/drivers/virtio");
    mkdirSync(join(pkg, "DEBIAN"), { recursive: true });
    mkdirSync(join(pkg, "boot"));
    mkdirSync(moddir, { recursive: true });
    writeFileSync(join(pkg, "DEBIAN/control"), "Package: linux-image-test\nVersion: 1\nArchitecture: i386\nMaintainer: t <t@t>\nDescription: test\n");
    copyFileSync(FIX + "config", join(pkg, "boot/config-6.12.117"));
    for (const f of readdirSync(MODULES)) copyFileSync(join(MODULES, f), join(moddir, f));
    execFileSync("dpkg-deb", ["--build", "-Zgzip", pkg, join(root, "linux-image-test.deb")], { stdio: "ignore" });
    const out = join(root, "t.cpio");
    const [code, err] = await cli(["initramfs", "--kernel", KERNEL, "--modules", join(root, "linux-image-test.deb"), "--out", out]);
    expect(code, err).toBe(0);
    expect(err).toMatch(/load order\): (virtio\S* )+virtio_pci/);
    // the .deb's config (not the image's) is what pre-flight read: a config saying =m without the module fails
    rmSync(join(moddir, "virtio_balloon.ko.xz"));
    execFileSync("dpkg-deb", ["--build", "-Zgzip", pkg, join(root, "no-balloon.deb")], { stdio: "ignore" });
    const [code2, err2] = await cli(["test", "--kernel", KERNEL, "--modules", join(root, "no-balloon.deb"), "--quiet"]);
    expect(code2).toBe(2);
    expect(err2).toMatch(/pre-flight \(the config in .*no-balloon\.deb\)[\s\S]*CONFIG_VIRTIO_BALLOON=m but --modules .*no-balloon\.deb has no virtio_balloon\.ko/);
  });

  it("--modules: the modules load in order, the driver binds, tests pass (one boot, then a restore)", async () => {
    const r = await runTests({
      kernel: KERNEL, modules: MODULES, files: [SUITE_DIR + "balloon-present.sh", SUITE_DIR + "stats.sh"],
      features: "-deflate-on-oom", snapshotCache: false, allowDiagnostics: ALLOW, progress: false,
    });
    const why = r.cases.map((c) => `${c.name}: ${c.failures.join("; ")}\n${c.serial ?? ""}`).join("\n");
    expect(r.ok, why).toBe(true);
    expect(r.bootMs).toHaveLength(1);
    expect(r.restoreMs).toHaveLength(1);
  }, 300_000);

  it("no driver bound after boot: the run stops once with the diagnosis (untestable)", async () => {
    const r = await runTests({
      kernel: KERNEL, modules: MODULES, cmdlineExtra: "module_blacklist=virtio_balloon",
      files: [SUITE_DIR + "balloon-present.sh", SUITE_DIR + "inflate-deflate.sh"], snapshotCache: false, allowDiagnostics: ALLOW, progress: false,
    });
    expect(r.ok).toBe(false);
    expect(r.untestable).toBe(true);
    expect(r.cases).toHaveLength(1);
    expect(r.stopped).toMatch(/no driver bound to virtio device 5 \(balloon\): virtio_balloon is not built in or not loaded/);
    expect(r.stopped).toMatch(/insmod virtio_balloon\.ko failed/);
    expect(r.tap.trimEnd().split("\n").pop()).toMatch(/^Bail out! no driver bound/);
  }, 300_000);

  it("a panic during a test (sysrq c) fails it at once with the report", async () => {
    const dir = mkdtempSync(join(tmpdir(), "panic-"));
    const f = script(dir, "panic.sh", ". /tests/lib.sh\nplan 1\n[ -w /proc/sysrq-trigger ] || bail 'no sysrq in this kernel'\necho c > /proc/sysrq-trigger\nok 'survived a panic?'\n");
    const t0 = Date.now();
    const r = await runTests({ kernel: KERNEL, modules: MODULES, files: [f], snapshotCache: false, allowDiagnostics: ALLOW, progress: false, timeoutTestMs: 120_000 });
    expect(r.cases[0].ok).toBe(false);
    expect(r.cases[0].failures[0]).toMatch(/^kernel crash: (Kernel panic - not syncing: sysrq triggered crash|Oops|BUG)/);
    expect(r.untestable).toBe(false);
    expect(Date.now() - t0).toBeLessThan(120_000 + 60_000); // not the test timeout
  }, 300_000);
});

describe.skipIf(!haveGuest)("--bisect exit codes on the project's kernel", () => {
  it("0 pass, 1 failure, 125 panic before the shell", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bisect-"));
    const cache = mkdtempSync(join(tmpdir(), "bisect-cache-"));
    const pass = script(dir, "pass.sh", ". /tests/lib.sh\nplan 1\nrequire_balloon\n");
    const fail = script(dir, "fail.sh", ". /tests/lib.sh\nplan 1\nnot_ok 'fails on purpose'\n");
    const common = ["--bisect", "--quiet", "--allow-diagnostic", ALLOW[0], "--snapshot-cache", cache];
    expect((await cli(["test", pass, ...common]))[0]).toBe(0);
    expect((await cli(["test", fail, ...common]))[0]).toBe(1);
    const [code, err] = await cli(["test", pass, ...common, "--append", "rdinit=/bin/false"]);
    expect(code).toBe(125);
    expect(err).toMatch(/kernel crashed before the shell answered/);
    expect(err).toMatch(/Kernel panic - not syncing: Attempted to kill init/);
  }, 300_000);
});

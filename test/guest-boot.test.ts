// The committed Linux guest boots in v86 under Node and answers at its shell.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVM, type VM } from "../src/vm.js";
import { GUEST_DIR, loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("guest boot (Node)", () => {
  let vm: VM;
  beforeAll(async () => {
    vm = await startVM(loadGuestImages(), v86WasmPath(), { memoryMiB: 128 });
  });
  afterAll(async () => vm?.destroy());

  it("runs an i686-class 32-bit kernel", async () => {
    const arch = (await vm.run("uname -m")).trim();
    expect(arch).toMatch(/^i[3-6]86$/);
  });

  it("sees PCI devices", async () => {
    const devices = (await vm.run("ls /sys/bus/pci/devices")).trim().split(/\s+/);
    expect(devices.length).toBeGreaterThan(1);
    expect(devices[0]).toMatch(/^0000:00:/);
  });

  it("reports a failing command's status", async () => {
    await expect(vm.run("false")).rejects.toThrow(/exited with 1/);
  });
});

describe("bad images", () => {
  function copyGuest(): string {
    const dir = mkdtempSync(join(tmpdir(), "guest-")) + "/";
    for (const f of readdirSync(GUEST_DIR)) copyFileSync(GUEST_DIR + f, dir + f);
    return dir;
  }

  it("names a missing image and the rebuild command", () => {
    const dir = mkdtempSync(join(tmpdir(), "guest-")) + "/";
    writeFileSync(dir + "manifest.json", '{"cmdline":"","outputs":{}}');
    expect(() => loadGuestImages({ dir })).toThrow(/bios\.bin is missing: .*npm run build:guest/);
  });

  it("names a corrupt image and the rebuild command", () => {
    const dir = copyGuest();
    writeFileSync(dir + "bzImage.bin", "not a kernel");
    expect(() => loadGuestImages({ dir })).toThrow(/bzImage\.bin is corrupt .*npm run build:guest/);
  });

  it("times out with the last serial lines instead of hanging", async () => {
    // init exits at once: the kernel panics and no prompt ever comes
    const vmOpts = { memoryMiB: 128, bootTimeoutMs: 15000, cmdlineExtra: "rdinit=/bin/false" };
    await expect(startVM(loadGuestImages(), v86WasmPath(), vmOpts)).rejects.toThrow(
      /timed out after 15000 ms waiting for the shell prompt; last serial lines:\n[\s\S]*\S/,
    );
  });
});

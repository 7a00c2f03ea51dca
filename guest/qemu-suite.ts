/**
 * The project's guest suite against the reference device: the same images (public/guest/), in Debian's
 * qemu-system-i386 (TCG) with QEMU's own virtio-balloon-pci, driven by the same harness (src/harness/).
 * It shows that the patched driver does not regress a production device, which offers bits 1-5 only.
 *
 *   npx tsx guest/qemu-suite.ts [test.sh ...]      (default: every suite test that QEMU can serve)
 *
 * QEMU is the balloon host here: `host target/inflate/deflate/wait/actual` go through its HMP monitor
 * (`balloon MiB`, `info balloon`, MiB granularity). Tests that need our device (fault modes, the device's
 * counters, hinting, statistics through the host API) are left out: they test our device, not the driver.
 * Environment: QEMU (default qemu-system-i386), GUEST_DIR (default public/guest).
 * Exit status 0 when every test passes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { runGroup } from "../src/harness/session.js";
import { planTests } from "../src/harness/runner.js";
import { resolveFeatures } from "../src/harness/descriptor.js";
import { SUITE_DIR } from "../src/harness/files.js";
import { DEFAULT_BOOT_TIMEOUT_MS, DEFAULT_MEMORY_MIB, DEFAULT_TEST_TIMEOUT_MS } from "../src/harness/plan.js";
import type { BalloonHostLike, BootConfig, GuestHandle, Launcher, TestGroup } from "../src/harness/types.js";

/**
 * Suite tests that need only what QEMU's balloon offers (no faults, no device counters). memcheck-cycles.sh
 * is out: its pattern check runs fine in QEMU, but it also asserts our device's page counters.
 */
const QEMU_TESTS = ["balloon-present.sh", "inflate-deflate.sh", "oom-deflate.sh"];

const ROOT = join(import.meta.dirname, "..");
const DIR = process.env.GUEST_DIR ?? join(ROOT, "public/guest");
const QEMU = process.env.QEMU ?? "qemu-system-i386";

/** QEMU's HMP monitor on a unix socket: one command at a time, the reply is what comes before the next prompt. */
class Monitor {
  private buf = "";
  private queue: Promise<string> = Promise.resolve("");
  private constructor(private readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (this.buf += d));
  }

  static async open(path: string, timeoutMs = 30000): Promise<Monitor> {
    const t0 = Date.now();
    for (;;) {
      try {
        const sock = await new Promise<Socket>((res, rej) => {
          const s = createConnection(path, () => res(s));
          s.once("error", rej);
        });
        const m = new Monitor(sock);
        await m.untilPrompt(timeoutMs);
        return m;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw new Error(`QEMU monitor ${path}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async untilPrompt(timeoutMs: number): Promise<string> {
    const t0 = Date.now();
    while (!this.buf.includes("(qemu) ")) {
      if (Date.now() - t0 > timeoutMs) throw new Error("no (qemu) prompt");
      await new Promise((r) => setTimeout(r, 20));
    }
    const i = this.buf.indexOf("(qemu) ");
    const out = this.buf.slice(0, i);
    this.buf = this.buf.slice(i + "(qemu) ".length);
    return out;
  }

  command(cmd: string): Promise<string> {
    this.queue = this.queue.then(() => {
      this.sock.write(cmd + "\n");
      return this.untilPrompt(10000);
    });
    return this.queue;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** The harness's view of a balloon, served by QEMU: pages are 4 KiB, QEMU counts guest-visible MiB. */
class QemuBalloon implements BalloonHostLike {
  target = 0;
  actual = 0;
  private timer: NodeJS.Timeout;
  constructor(private readonly mon: Monitor, private readonly ramMiB: number) {
    this.timer = setInterval(() => void this.poll(), 100);
  }

  private async poll(): Promise<void> {
    const m = /actual=(\d+)/.exec(await this.mon.command("info balloon").catch(() => ""));
    if (m) this.actual = (this.ramMiB - Number(m[1])) * 256;
  }

  setTarget(pages: number): void {
    this.target = Math.ceil(pages / 256) * 256;
    void this.mon.command(`balloon ${this.ramMiB - this.target / 256}`);
  }

  on(): void {}

  close(): void {
    clearInterval(this.timer);
    this.mon.close();
  }
}

function manifestCmdline(): string {
  const m = JSON.parse(readFileSync(join(DIR, "manifest.json"), "utf8")) as { cmdline?: string };
  return m.cmdline ?? "console=ttyS0";
}

const qemuLauncher: Launcher = async (boot: BootConfig, onSerial) => {
  const sockPath = join(tmpdir(), `qemu-suite-${process.pid}-${Date.now()}.sock`);
  const doom = boot.features.DEFLATE_ON_OOM === false ? "off" : "on";
  const fpr = boot.features.PAGE_REPORTING === false ? "off" : "on";
  const append = boot.cmdline ?? `${manifestCmdline()} ${boot.cmdlineExtra ?? ""}`;
  const child: ChildProcess = spawn(QEMU, [
    "-accel", "tcg", "-cpu", "pentium3", "-m", String(boot.memoryMiB), "-no-reboot",
    "-kernel", join(DIR, "bzImage.bin"), "-initrd", join(DIR, "initramfs.cpio"), "-append", append.trim(),
    "-display", "none", "-serial", "stdio", "-monitor", `unix:${sockPath},server=on,wait=off`,
    "-device", `virtio-balloon-pci,disable-legacy=on,deflate-on-oom=${doom},free-page-reporting=${fpr}`,
  ], { stdio: ["pipe", "pipe", "inherit"] });
  child.stdout!.setEncoding("utf8");
  // Like the v86 launcher: the guest is handed over at its first shell prompt.
  let seen = "";
  let prompted: () => void = () => {};
  const prompt = new Promise<void>((r) => (prompted = r));
  child.stdout!.on("data", (d: string) => {
    seen = (seen + d).slice(-4096);
    if (seen.includes("~ # ")) prompted();
    onSerial(d);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let balloon: QemuBalloon | null = null;
  try {
    balloon = new QemuBalloon(await Monitor.open(sockPath), boot.memoryMiB);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      prompt,
      exited.then(() => Promise.reject(new Error("QEMU exited before the shell prompt"))),
      new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`no shell prompt within ${boot.bootTimeoutMs} ms`)), boot.bootTimeoutMs))),
    ]).finally(() => clearTimeout(timer));
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  const handle: GuestHandle = {
    balloon,
    vm: {
      send: (text: string) => void child.stdin!.write(text),
      destroy: async () => {
        balloon?.close();
        child.kill("SIGKILL");
        await exited;
        rmSync(sockPath, { force: true });
      },
    },
  };
  return handle;
};

async function main(): Promise<number> {
  const names = process.argv.length > 2 ? process.argv.slice(2).map((a) => basename(a)) : QEMU_TESTS;
  const tests = planTests(names.map((n) => join(SUITE_DIR, n)), DEFAULT_TEST_TIMEOUT_MS);
  const lib = readFileSync(join(SUITE_DIR, "lib.sh"), "utf8");
  let failed = 0;
  for (const t of tests) {
    const boot: BootConfig = {
      memoryMiB: t.descriptor.memoryMiB ?? DEFAULT_MEMORY_MIB,
      cmdlineExtra: t.descriptor.cmdline,
      features: resolveFeatures(t.descriptor.features),
      faults: [],
      bootTimeoutMs: DEFAULT_BOOT_TIMEOUT_MS,
    };
    const group: TestGroup = { key: t.id, boot, tests: [t], fresh: true };
    const [r] = await runGroup(group, { launcher: qemuLauncher, libScript: lib });
    const ok = r?.ok === true;
    if (!ok) failed++;
    console.log(`${ok ? "ok" : "not ok"} - ${t.name} (${((r?.durationMs ?? 0) / 1000).toFixed(1)} s)`);
    if (!ok) console.log([...(r?.failures ?? []), r?.serial ?? ""].join("\n").split("\n").map((l) => `#   ${l}`).join("\n"));
  }
  console.log(`${tests.length - failed}/${tests.length} passed against ${QEMU} virtio-balloon-pci`);
  return failed ? 1 : 0;
}

process.exitCode = await main();

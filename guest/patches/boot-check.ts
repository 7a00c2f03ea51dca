/**
 * guest/patches/boot-check.ts KERNEL: boots a kernel built at one step of the series (check-series.sh)
 * in v86, with the committed initramfs and our device offering bits 0-7, and checks what every step
 * must keep working: the guest reaches its shell, the balloon driver binds and negotiates, a 16 MiB
 * inflate and deflate go through, and the kernel log has no Oops, BUG, WARNING or bad page state.
 * Prints one line with the negotiated features. Exit status 0 ok, 1 failed (the reason on stderr).
 *
 *   npx tsx guest/patches/boot-check.ts guest/.build/check-series/bzImage-5
 */
import { existsSync } from "node:fs";
import { startNodeBalloonVM, type BalloonVM } from "../../src/node/balloon-vm-node.js";
import { until } from "../../devkit/until.js";

const PAGES = 16 * 256;

async function check(b: BalloonVM): Promise<string> {
  const negotiated = b.host.features.negotiatedNames;
  if (!negotiated.includes("VERSION_1")) throw new Error(`the balloon driver did not negotiate (features: ${negotiated.join(" ") || "none"})`);
  for (const pages of [PAGES, 0]) {
    b.host.setTarget(pages);
    await until(() => b.host.actual === pages, `the balloon at ${pages} pages`, 120000);
  }
  const complaints = await b.vm.run("dmesg | grep -E 'Oops|BUG|WARNING|Bad page|Kernel panic|Call Trace' || true", { timeoutMs: 60000 });
  if (complaints.trim() !== "") throw new Error(`the kernel complained:\n${complaints}`);
  return negotiated.join(" ");
}

const kernel = process.argv[2];
if (!kernel || !existsSync(kernel)) {
  console.error("usage: npx tsx guest/patches/boot-check.ts KERNEL (a bzImage built from the series)");
  process.exit(1);
}
let b: BalloonVM | undefined;
try {
  b = await startNodeBalloonVM({ memoryMiB: 128, kernel, balloon: { floor: "off" } });
  console.log(`boot-check: ok, negotiated ${await check(b)}`);
  await b.vm.destroy();
  process.exit(0);
} catch (e) {
  console.error(`boot-check: FAIL: ${(e as Error).message}`);
  await b?.vm.destroy().catch(() => undefined);
  process.exit(1);
}

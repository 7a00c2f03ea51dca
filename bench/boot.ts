/**
 * Boot to the shell prompt, median of several boots: in Node (v86 + our balloon, committed images)
 * and in headless Chromium (the built demo page, `?autoboot`). Also where the Node boot's time goes,
 * from the kernel's own printk timestamps (CONFIG_PRINTK_TIME) and host time at the first serial byte.
 */
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import { waitReady } from "../devkit/demo-page.js";
import { DIST, launchChromium, requireBuiltSite, serveStatic } from "../devkit/browser.js";
import { median } from "./support.js";

const BOOTS = 3;
const MEMORY_MIB = 128;

async function nodeBoot(): Promise<{ promptMs: number; firstByteMs: number; kernelInitS: number }> {
  const t0 = performance.now();
  let firstByteMs = 0;
  const b = await startNodeBalloonVM({
    memoryMiB: MEMORY_MIB,
    onSerial: () => {
      if (!firstByteMs) firstByteMs = performance.now() - t0;
    },
  });
  const promptMs = performance.now() - t0;
  // Kernel time stamp of the last boot message before userspace.
  const stamps = [...b.vm.serialLog.matchAll(/^\[\s*(\d+\.\d+)\]/gm)].map((m) => Number(m[1]));
  await b.vm.destroy();
  return { promptMs, firstByteMs, kernelInitS: stamps.length ? stamps[stamps.length - 1] : 0 };
}

async function chromiumBoots(): Promise<number[]> {
  requireBuiltSite();
  const server = await serveStatic(DIST);
  const browser = await launchChromium();
  try {
    const times: number[] = [];
    for (let i = 0; i < BOOTS; i++) {
      const page = await browser.context.newPage();
      const t0 = Date.now();
      await page.goto(`${server.url}index.html?autoboot&memory=${MEMORY_MIB}`);
      await waitReady(page);
      times.push(Date.now() - t0);
      await page.close();
    }
    return times;
  } finally {
    await browser.close();
    await server.close();
  }
}

export async function run(): Promise<Record<string, number>> {
  const node = [];
  for (let i = 0; i < BOOTS; i++) node.push(await nodeBoot());
  const chromium = await chromiumBoots();
  return {
    "boot.node_prompt_ms": Math.round(median(node.map((n) => n.promptMs))),
    "boot.node_first_serial_byte_ms": Math.round(median(node.map((n) => n.firstByteMs))),
    "boot.node_kernel_last_printk_s": median(node.map((n) => n.kernelInitS)),
    "boot.chromium_prompt_ms": Math.round(median(chromium)),
  };
}

/**
 * `v86-balloon snapshot`: boot the guest, run commands, let the balloon make the saved state small, save
 * it as a state file (src/state-file.ts) that `<v86-balloon-vm state=...>` restores in under a second.
 *
 * v86 stores only non-zero 4 KiB pages, so compaction means zeroing what the guest does not use: drop the
 * page cache, run a free page hinting cycle (the device zeroes every hinted page), then inflate the
 * balloon to a floor the guest can spare (the device initialises every inflated page) and deflate it
 * again, so the restored guest has all its RAM. The same state saved before the compaction is measured
 * side by side.
 */
import { createHash } from "node:crypto";
import { IMAGE_FILES } from "../guest-manifest.js";
import type { BalloonHost } from "../host/balloon-host.js";
import { encodeStateFile, gzip, STATE_FORMAT, type StateHeader } from "../state-file.js";
import { DEFAULT_FEATURES, DEFAULT_MEMORY_MIB, featureOffer, type FeatureName } from "../vocabulary.js";
import { startNodeBalloonVM } from "./balloon-vm-node.js";
import { loadGuestImages } from "./vm-node.js";

export interface SnapshotOptions {
  memoryMiB?: number;
  features?: readonly FeatureName[];
  /** Shell line(s) run before saving; newlines separate commands. */
  commands?: string;
  imageDir?: string;
  kernel?: string;
  initrd?: string;
  /** MiB the balloon leaves the guest while compacting (default 16). */
  floorMiB?: number;
  onLog?: (line: string) => void;
}

export interface Snapshot {
  /** The state file (gzip). */
  file: Uint8Array;
  header: StateHeader;
  /** gzip size of the same file made without the balloon's compaction. */
  uncompactedFileBytes: number;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`snapshot: timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Free page hinting: one cycle over all free pages, each hinted page zeroed by the device. */
async function hintAll(host: BalloonHost): Promise<void> {
  if (host.startHinting() === null) return;
  await until(() => host.hinting.status === "stopped" || host.hinting.status === "done" || host.hinting.status === "driver-stopped", 120_000, "the hinting cycle to end");
  host.stopHinting();
}

/** Inflates to all but `floorMiB` of free memory, then deflates to 0. */
async function inflateAndDeflate(host: BalloonHost, memFreeKiB: number, floorMiB: number): Promise<number> {
  const pages = Math.max(0, Math.floor((memFreeKiB - floorMiB * 1024) / 4));
  if (pages === 0) return 0;
  host.setTarget(pages);
  // The guest may stop short of the target (memory it cannot spare); settled = no change for 2 s.
  let last = -1;
  let since = Date.now();
  await until(() => {
    if (host.actual !== last) [last, since] = [host.actual, Date.now()];
    return host.actual >= pages || Date.now() - since > 2000;
  }, 180_000, "the balloon to inflate");
  const inflated = host.actual;
  host.setTarget(0);
  await until(() => host.actual === 0, 120_000, "the balloon to deflate");
  return inflated;
}

function sha256(b: ArrayBuffer): string {
  return createHash("sha256").update(new Uint8Array(b)).digest("hex");
}

export async function makeSnapshot(opts: SnapshotOptions = {}): Promise<Snapshot> {
  const log = opts.onLog ?? (() => {});
  const memoryMiB = opts.memoryMiB ?? DEFAULT_MEMORY_MIB;
  const features = [...(opts.features ?? DEFAULT_FEATURES)];
  const images = loadGuestImages({ dir: opts.imageDir, kernel: opts.kernel, initrd: opts.initrd });
  log(`booting a ${memoryMiB} MiB guest (features ${features.join(",") || "none"})`);
  const { vm, host } = await startNodeBalloonVM({
    memoryMiB,
    imageDir: opts.imageDir,
    kernel: opts.kernel,
    initrd: opts.initrd,
    balloon: { features: featureOffer(features) },
  });
  try {
    for (const line of (opts.commands ?? "").split("\n")) {
      if (!line.trim()) continue;
      log(`$ ${line.trim()}`);
      await vm.run(line.trim(), { timeoutMs: 600_000 });
    }
    await vm.run("sync; echo 3 > /proc/sys/vm/drop_caches");
    const uncompacted = await vm.saveState();
    log(`compacting: free page hinting, then inflate to a ${opts.floorMiB ?? 16} MiB floor and deflate`);
    await hintAll(host);
    const memFree = Number(/MemFree:\s+(\d+)/.exec(await vm.run("cat /proc/meminfo"))?.[1] ?? 0);
    const inflated = await inflateAndDeflate(host, memFree, opts.floorMiB ?? 16);
    log(`balloon went up to ${(inflated / 256).toFixed(0)} MiB and back to 0`);
    // A clean line for the restored page: the prompt is printed again on restore.
    await vm.run("true");
    const state = await vm.saveState();
    const header: StateHeader = {
      format: STATE_FORMAT,
      memoryMiB,
      features,
      images: {
        sha256: {
          [IMAGE_FILES.bios]: sha256(images.bios),
          [IMAGE_FILES.vgaBios]: sha256(images.vgaBios),
          [IMAGE_FILES.kernel]: sha256(images.kernel),
          [IMAGE_FILES.initrd]: sha256(images.initrd),
        },
      },
      rawBytes: state.byteLength,
      uncompactedRawBytes: uncompacted.byteLength,
      ...(opts.commands ? { commands: opts.commands } : {}),
      created: new Date().toISOString(),
    };
    const file = await encodeStateFile(header, state);
    const uncompactedFileBytes = (await gzip(new Uint8Array(uncompacted))).byteLength;
    return { file, header, uncompactedFileBytes };
  } finally {
    await vm.destroy();
  }
}

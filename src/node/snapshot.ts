/**
 * `v86-balloon snapshot`: boot the guest, run commands, let the balloon make the saved state small, save
 * it as a state file (src/state-file.ts) that `<v86-balloon-vm state=...>` restores in under a second.
 *
 * v86 stores only non-zero 4 KiB pages, so compaction means zeroing what the guest does not use: drop the
 * page cache, run a free page hinting cycle (the device zeroes every hinted page), inflate the balloon to
 * a floor the guest can spare (the device initialises every inflated page), then let free page reporting
 * run down to single pages over what the balloon could not take (the driver's own floor, ZONE_DMA, broken-up
 * blocks: the device zeroes reported pages), and deflate, so the restored guest has all its RAM. The same
 * state saved before the compaction is measured side by side.
 */
import { createHash } from "node:crypto";
import { IMAGE_FILES } from "../guest-manifest.js";
import { hasFeature } from "../balloon/features.js";
import type { BalloonHost } from "../host/balloon-host.js";
import { nonZeroPages } from "../memory/access.js";
import { until, untilStable, waitFor } from "../until.js";
import type { VM } from "../vm.js";
import { encodeStateFile, gzip, stateHeader, type StateHeader } from "../state-file.js";
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
  /** Guest RAM holding data (non-zero 4 KiB pages, which the state stores), before and after compaction. */
  contentPages: { before: number; after: number };
  /** What compaction did: the balloon's peak and the pages free page reporting zeroed. */
  compaction: { inflatedPages: number; reportedPages: number };
}

/** Free page hinting: one cycle over all free pages, each hinted page zeroed by the device. */
async function hintAll(host: BalloonHost): Promise<void> {
  if (host.startHinting() === null) return;
  await until(() => host.hinting.status === "stopped" || host.hinting.status === "done" || host.hinting.status === "driver-stopped", "the hinting cycle to end", 120_000);
  host.stopHinting();
}

/** Inflates to all but `floorMiB` of free memory; returns the pages it reached (the guest may stop short). */
async function inflate(host: BalloonHost, memFreeKiB: number, floorMiB: number): Promise<number> {
  const pages = Math.max(0, Math.floor((memFreeKiB - floorMiB * 1024) / 4));
  if (pages === 0) return 0;
  host.setTarget(pages);
  await untilStable(() => Math.min(host.actual, pages), "the balloon to inflate", 2000, 180_000);
  return host.actual;
}

const REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order";
/** Linux starts a reporting pass 2 s after a free (PAGE_REPORTING_DELAY) and repeats while pages remain. */
const REPORT_QUIET_MS = 4000;

/**
 * Free page reporting over every free page: Linux reports only blocks of page_reporting_order (4 MiB
 * here), so lower it to 0 for one round, wait until the reports stop, and put it back. Returns pages reported.
 */
async function reportAll(vm: VM, host: BalloonHost): Promise<number> {
  if (!hasFeature(host.features.negotiated, "PAGE_REPORTING")) return 0;
  const order = (await vm.run(`cat ${REPORTING_ORDER} 2>/dev/null || true`)).trim();
  if (!/^\d+$/.test(order)) return 0;
  const start = host.counters().pagesReported;
  await vm.run(`echo 0 > ${REPORTING_ORDER}`);
  try {
    // A 4 MiB buffer freed at dd's exit overflows the per-CPU free lists into the buddy allocator, whose
    // free requests the pass. Nothing reported within 30 s: nothing left to report.
    await vm.run("dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null");
    if (await waitFor(() => host.counters().pagesReported > start, 30_000)) {
      await untilStable(() => host.counters().pagesReported, "free page reporting to finish", REPORT_QUIET_MS, 180_000);
    }
  } finally {
    await vm.run(`echo ${order} > ${REPORTING_ORDER}`);
  }
  return host.counters().pagesReported - start;
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
  const { vm, host, adapter } = await startNodeBalloonVM({
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
    const before = nonZeroPages(adapter.memory);
    const floorMiB = opts.floorMiB ?? 16;
    log(`compacting: free page hinting, inflate to a ${floorMiB} MiB floor, free page reporting of single pages, deflate`);
    await hintAll(host);
    const memFree = Number(/MemFree:\s+(\d+)/.exec(await vm.run("cat /proc/meminfo"))?.[1] ?? 0);
    const inflatedPages = await inflate(host, memFree, floorMiB);
    const reportedPages = await reportAll(vm, host);
    host.setTarget(0);
    await until(() => host.actual === 0, "the balloon to deflate", 120_000);
    log(`balloon went up to ${(inflatedPages / 256).toFixed(0)} MiB and back to 0; free page reporting zeroed ${(reportedPages / 256).toFixed(1)} MiB`);
    // A clean line for the restored page: the prompt is printed again on restore.
    await vm.run("true");
    const state = await vm.saveState();
    const header = stateHeader({
      memoryMiB,
      features,
      imageSha256: {
        [IMAGE_FILES.bios]: sha256(images.bios),
        [IMAGE_FILES.vgaBios]: sha256(images.vgaBios),
        [IMAGE_FILES.kernel]: sha256(images.kernel),
        [IMAGE_FILES.initrd]: sha256(images.initrd),
      },
      rawBytes: state.byteLength,
      uncompactedRawBytes: uncompacted.byteLength,
      ...(opts.commands ? { commands: opts.commands } : {}),
    });
    const file = await encodeStateFile(header, state);
    const uncompactedFileBytes = (await gzip(new Uint8Array(uncompacted))).byteLength;
    return { file, header, uncompactedFileBytes, contentPages: { before, after: nonZeroPages(adapter.memory) }, compaction: { inflatedPages, reportedPages } };
  } finally {
    await vm.destroy();
  }
}

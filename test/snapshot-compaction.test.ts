/**
 * `v86-balloon snapshot` on a real guest: the balloon's compaction removes the content of free memory
 * (here 32 MiB of random data the guest wrote and deleted), including what the balloon itself cannot
 * take (the driver's floor, ZONE_DMA), and the restored guest is left as it was (its files, its free page
 * reporting order, a working balloon).
 */
import { describe, expect, it } from "vitest";
import { makeSnapshot } from "../src/node/snapshot.js";
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import { decodeStateFile } from "../src/state-file.js";
import { until } from "../src/until.js";
import { featureOffer } from "../src/vocabulary.js";

const MiB = 256; // pages

describe("snapshot compaction on a real guest", () => {
  it("zeroes the freed junk, reports what the balloon could not take, and restores to a working guest", async () => {
    const snap = await makeSnapshot({
      memoryMiB: 128,
      commands: "dd if=/dev/urandom of=/tmp/junk bs=1M count=32 2>/dev/null; rm /tmp/junk; echo kept > /tmp/marker",
    });
    // Preconditions: the junk was in RAM when the uncompacted state was taken, and every phase acted.
    expect(snap.contentPages.before).toBeGreaterThan(32 * MiB);
    expect(snap.compaction.inflatedPages).toBeGreaterThan(32 * MiB);
    // The balloon stops at the driver's floor; reporting of single pages covers the rest of free RAM.
    expect(snap.compaction.reportedPages).toBeGreaterThan(4 * MiB);

    expect(snap.contentPages.after).toBeLessThan(snap.contentPages.before - 30 * MiB);
    expect(snap.file.byteLength).toBeLessThan(snap.uncompactedFileBytes / 4);

    const { header, v86State } = await decodeStateFile(snap.file);
    const { vm, host } = await startNodeBalloonVM({ memoryMiB: header.memoryMiB, balloon: { features: featureOffer(header.features) }, initialState: v86State });
    try {
      const out = await vm.run("cat /tmp/marker; cat /sys/module/page_reporting/parameters/page_reporting_order");
      expect(out).toContain("kept");
      // Compaction lowered the reporting order for one round only.
      expect(out).toMatch(/^10$/m);
      host.setTarget(16 * MiB);
      await until(() => host.actual === 16 * MiB, "the restored guest to inflate 16 MiB", 60_000);
    } finally {
      await vm.destroy();
    }
  }, 300_000);
});

/**
 * v86 `save_state` size after the guest dirties and frees 75 % of its RAM: a VM without our balloon
 * vs one with it (free page reporting zeroes what the guest reports; then the balloon is inflated
 * over what is free). v86 stores only non-zero 4 KiB pages, so zeroed memory costs nothing.
 */
import { startNodeBalloonVM } from "../src/node/balloon-vm-node.js";
import { loadGuestImages, v86WasmPath } from "../src/node/vm-node.js";
import { startVM, type VM } from "../src/vm.js";
import { msUntil } from "./support.js";
import { untilStable } from "../src/until.js";

const RAM_MIB = 256;
const DIRTY_MIB = (RAM_MIB * 3) / 4;

/** The guest writes every page of 75 % of RAM, then frees it. */
async function dirtyAndFree(vm: VM): Promise<void> {
  await vm.run(`memtouch ${DIRTY_MIB}`, { timeoutMs: 120000 });
}


export async function run(): Promise<Record<string, number>> {
  const plain = await startVM(loadGuestImages(), v86WasmPath(), { memoryMiB: RAM_MIB });
  await dirtyAndFree(plain);
  const without = (await plain.saveState()).byteLength;
  await plain.destroy();

  const b = await startNodeBalloonVM({ memoryMiB: RAM_MIB, balloon: { features: { DEFLATE_ON_OOM: false } } });
  await dirtyAndFree(b.vm);
  await untilStable(() => b.host.counters().pagesReported, "free page reports to settle");
  const reportedOnly = (await b.vm.saveState()).byteLength;
  const reportedPages = b.host.counters().pagesReported;
  const free = Number(/MemFree:\s+(\d+)/.exec(await b.vm.run("cat /proc/meminfo"))![1]);
  // Leave the guest 24 MiB free; inflate over the rest.
  const target = Math.max(0, Math.floor((free - 24 * 1024) / 4));
  b.host.setTarget(target);
  await msUntil(() => b.host.actual === target, 120000);
  const withBalloon = (await b.vm.saveState()).byteLength;
  await b.vm.destroy();

  return {
    "snapshot.without_balloon_bytes": without,
    "snapshot.reporting_only_bytes": reportedOnly,
    "snapshot.with_balloon_bytes": withBalloon,
    "snapshot.reported_mib": reportedPages / 256,
    "snapshot.inflated_mib": target / 256,
    "snapshot.reporting_only_ratio": reportedOnly / without,
    "snapshot.size_ratio": withBalloon / without,
  };
}

/** Boots a guest with our balloon under Node, for the harness. */
import { startNodeBalloonVM } from "../node/balloon-vm-node.js";
import { faultObject } from "./descriptor.js";
import type { BootConfig, Launcher } from "./types.js";

export const nodeLauncher: Launcher = async (boot: BootConfig, onSerial) => {
  const started = await startNodeBalloonVM({
    memoryMiB: boot.memoryMiB,
    bootTimeoutMs: boot.bootTimeoutMs,
    onSerial,
    ...(boot.cmdline ? { cmdline: boot.cmdline } : {}),
    ...(boot.cmdlineExtra ? { cmdlineExtra: boot.cmdlineExtra } : {}),
    ...(boot.kernel ? { kernel: boot.kernel } : {}),
    ...(boot.initrd ? { initrd: boot.initrd } : {}),
    ...(boot.imageDir ? { imageDir: boot.imageDir } : {}),
    balloon: { features: boot.features, faults: faultObject(boot.faults) },
  });
  return { vm: started.vm, balloon: started.host };
};

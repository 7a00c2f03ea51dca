/** Boots a guest with our balloon under Node, for the harness. */
import { startNodeBalloonVM } from "../node/balloon-vm-node.js";
import { bootVMOptions } from "./descriptor.js";
import type { BootConfig, Launcher } from "./types.js";

export const nodeLauncher: Launcher = async (boot: BootConfig, onSerial, onBalloon) => {
  const started = await startNodeBalloonVM({
    ...bootVMOptions(boot, onSerial),
    onAttached: (a) => onBalloon(a.host),
    ...(boot.kernel ? { kernel: boot.kernel } : {}),
    ...(boot.initrd ? { initrd: boot.initrd } : {}),
    ...(boot.imageDir ? { imageDir: boot.imageDir } : {}),
  });
  return { vm: started.vm, balloon: started.host };
};

/**
 * Boots a guest under Node: the lead's `startNodeBalloonVM` (v86 + our balloon) when it exists, otherwise a
 * plain `startVM` without a balloon (host steps then answer @@ERR, device-free tests still run).
 */
import { loadGuestImages, v86WasmPath } from "../node/vm-node.js";
import { startVM } from "../vm.js";
import type { BootConfig, GuestHandle, Launcher } from "./types.js";

/** `startNodeBalloonVM` returns the host API as `host` (older drafts: `balloon`). */
type BalloonVMStarter = (
  opts: Record<string, unknown>,
) => Promise<{ vm: GuestHandle["vm"]; host?: GuestHandle["balloon"]; balloon?: GuestHandle["balloon"] }>;

let starter: BalloonVMStarter | null | undefined;

async function balloonStarter(): Promise<BalloonVMStarter | null> {
  if (starter !== undefined) return starter;
  const path = "../node/balloon-vm-node.js";
  try {
    const mod = (await import(/* @vite-ignore */ path)) as { startNodeBalloonVM?: BalloonVMStarter };
    starter = mod.startNodeBalloonVM ?? null;
  } catch (e) {
    const msg = (e as Error).message;
    if (!/Cannot find module|Failed to load|ERR_MODULE_NOT_FOUND|does not provide/.test(msg)) throw e;
    starter = null;
  }
  return starter;
}

/** True when guests get our balloon device. */
export async function hasBalloon(): Promise<boolean> {
  return (await balloonStarter()) !== null;
}

function faultObject(faults: string[]): Record<string, boolean> {
  return Object.fromEntries(faults.map((f) => [f, true]));
}

export const nodeLauncher: Launcher = async (boot: BootConfig, onSerial) => {
  const start = await balloonStarter();
  const common = {
    memoryMiB: boot.memoryMiB,
    bootTimeoutMs: boot.bootTimeoutMs,
    onSerial,
    ...(boot.cmdline ? { cmdline: boot.cmdline } : {}),
    ...(boot.cmdlineExtra ? { cmdlineExtra: boot.cmdlineExtra } : {}),
  };
  if (start) {
    const started = await start({
      ...common,
      ...(boot.kernel ? { kernel: boot.kernel } : {}),
      ...(boot.initrd ? { initrd: boot.initrd } : {}),
      ...(boot.imageDir ? { dir: boot.imageDir } : {}),
      balloon: { features: boot.features, faults: faultObject(boot.faults) },
    });
    return { vm: started.vm, balloon: started.host ?? started.balloon ?? null };
  }
  if (boot.faults.length) throw new Error(`fault modes ${boot.faults.join(",")} need the balloon device (src/node/balloon-vm-node.ts is missing)`);
  const images = loadGuestImages({ dir: boot.imageDir, kernel: boot.kernel, initrd: boot.initrd });
  const vm = await startVM(images, v86WasmPath(), common);
  return { vm, balloon: null };
};

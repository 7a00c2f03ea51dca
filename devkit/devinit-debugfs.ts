import type { VM } from "../src/vm.js";

/** The patched guest's `name value` lines (guest/patches/README.md), as numbers by name. */
export async function readDevinitDebugfs(vm: VM): Promise<Record<string, number>> {
  const text = await vm.run("cat /sys/kernel/debug/virtio-balloon-devinit");
  return Object.fromEntries([...text.matchAll(/^\s*(\w+)\s+(\d+)\s*$/gm)].map((m) => [m[1], Number(m[2])]));
}

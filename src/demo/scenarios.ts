/** One-click scenarios: each types a command line into the guest's shell, visibly. */
import type { VM } from "../vm.js";
import { $, h } from "./dom.js";

export interface Scenario {
  id: string;
  label: string;
  help: string;
  command: string;
}

export function scenarios(memoryMiB: number): Scenario[] {
  const alloc = Math.min(100, Math.floor(memoryMiB * 0.6));
  const cache = Math.min(64, Math.floor(memoryMiB * 0.4));
  return [
    {
      id: "alloc",
      label: `Allocate ${alloc} MiB and free it`,
      help: `memtouch touches every page of ${alloc} MiB, then exits; with PAGE_REPORTING the freed blocks are reported and zeroed`,
      command: `free -m; memtouch ${alloc}; free -m`,
    },
    {
      id: "cache",
      label: `Fill the page cache (${cache} MiB)`,
      help: "write a file to /tmp (tmpfs): the pages stay in the cache and MemFree drops",
      command: `dd if=/dev/zero of=/tmp/f bs=1M count=${cache} && free -m`,
    },
    {
      id: "drop",
      label: "Drop it again",
      help: "delete the file and drop clean caches",
      command: "rm -f /tmp/f; sync; echo 3 > /proc/sys/vm/drop_caches; free -m",
    },
    {
      id: "oom",
      label: "Trigger OOM",
      help: "touch as much memory as MemTotal: the OOM killer stops it (with DEFLATE_ON_OOM the balloon deflates first)",
      command: "set -- $(grep MemTotal /proc/meminfo); memtouch $(($2 / 1024)); dmesg | grep -iE 'oom|balloon' | tail -n 4",
    },
    { id: "free", label: "free -m", help: "the guest's view of its memory", command: "free -m" },
    { id: "dmesg", label: "Kernel log (balloon)", help: "virtio / balloon lines from dmesg", command: "dmesg | grep -iE 'virtio|balloon' | tail -n 8" },
  ];
}

export function createScenarios(vm: VM, memoryMiB: number, focus: () => void): Scenario[] {
  const root = $("scenarios");
  root.classList.remove("disabled");
  const list = scenarios(memoryMiB);
  root.replaceChildren(
    ...list.map((s) => {
      const b = h("button", { text: s.label, title: `${s.help}\n\n$ ${s.command}`, "data-scenario": s.id });
      b.addEventListener("click", () => {
        vm.send(s.command + "\n");
        $("scenario-status").textContent = `Typed into the guest: ${s.command}`;
        focus();
      });
      return b;
    }),
  );
  return list;
}

/**
 * The harness inside a browser page: `window.__harness.runGroup(group, lib)` boots a guest with
 * `startBrowserBalloonVM` and runs the group with the same session code as Node; events go to
 * `window.__harnessEvent` (exposed by the Node side through playwright).
 */
import { startBrowserBalloonVM } from "../../browser/balloon-vm-browser.js";
import { bootVMOptions } from "../descriptor.js";
import { runGroup, type GroupOptions } from "../session.js";
import type { CaseResult, HarnessEvent, Launcher, TestGroup } from "../types.js";

declare global {
  interface Window {
    __harness: { ready: true; runGroup(group: TestGroup, lib: string, traceAll: boolean, extra?: Partial<GroupOptions>): Promise<CaseResult[]> };
    __harnessEvent?: (e: HarnessEvent) => void;
  }
}

const launcher: Launcher = async (boot, onSerial, onBalloon) => {
  const r = await startBrowserBalloonVM({
    ...bootVMOptions(boot, onSerial),
    onAttached: (a) => onBalloon(a.host),
    images: {
      ...(boot.imageDir ? { base: boot.imageDir } : {}),
      ...(boot.kernel ? { kernel: boot.kernel } : {}),
      ...(boot.initrd ? { initrd: boot.initrd } : {}),
    },
  });
  return { vm: r.vm, balloon: r.balloon };
};

const log = document.getElementById("log");

window.__harness = {
  ready: true,
  runGroup(group, lib, traceAll, extra) {
    return runGroup(group, {
      ...extra,
      launcher,
      libScript: lib,
      traceAll,
      emit: (e) => {
        if (log && e.type !== "test-start") log.textContent += `${JSON.stringify(e).slice(0, 200)}\n`;
        window.__harnessEvent?.(e);
      },
    });
  },
};

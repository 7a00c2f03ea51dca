/** `mount(element, options)`: a terminal on a booted guest inside any element. */
import { DEFAULT_IMAGE_BASE } from "../browser/vm-browser.js";
import type { VM } from "../vm.js";
import type { BalloonLike } from "./balloon-types.js";
import { bootGuest, LoadError, type ImageUrls } from "./boot.js";
import { DEFAULT_FEATURES, parseFeatures, type FeatureName } from "./features.js";
import { injectStyle, SerialTerminal } from "./terminal.js";
import type { FloorOption } from "../host/floor.js";

export interface MountOptions {
  /** Guest RAM in MiB (default 128). */
  memory?: number;
  /** Balloon features offered: names (`"stats"`, ...) or one comma-separated string. */
  features?: readonly FeatureName[] | string;
  /** Where the guest images are: `base` directory and/or single `kernel`/`initrd` URLs. */
  images?: ImageUrls;
  /** Typed into the shell once it is up (e.g. `"uname -a; free"`); newlines separate lines. */
  commands?: string;
  /** Terminal only: no status bar or balloon controls. */
  compact?: boolean;
  /** Boot now (default) or show a Boot button. */
  autostart?: boolean;
  /** Extra kernel command line. */
  cmdlineExtra?: string;
  /** Memory the balloon always leaves to the guest: "auto" (default), "off" or bytes (src/host/floor.ts). */
  floor?: FloorOption;
  /** Terminal font size in px. */
  fontSize?: number;
  bootTimeoutMs?: number;
  /** Called once the shell prompt is up. */
  onReady?: (vm: MountedVM) => void;
  onError?: (error: Error) => void;
}

export interface MountedVM {
  readonly element: HTMLElement;
  readonly terminal: SerialTerminal;
  /** Set once booted. */
  vm: VM | null;
  balloon: BalloonLike | null;
  /** Resolves when the prompt is up (boots if not autostarted and not yet booted). */
  boot(): Promise<MountedVM>;
  /** The terminal's visible text (scrollback included). */
  text(): string;
  destroy(): Promise<void>;
}

const CSS = `
.v86b { display:flex; flex-direction:column; font:13px/1.4 system-ui,sans-serif; background:#0f1419; color:#d8dee9;
  border:1px solid #2b3542; border-radius:6px; overflow:hidden; min-height:200px; }
.v86b-bar { display:flex; align-items:center; gap:.6em; padding:4px 8px; background:#18202a; border-bottom:1px solid #2b3542; flex-wrap:wrap; }
.v86b-bar .v86b-status { flex:1; min-width:10em; color:#9fb0c3; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.v86b-bar input[type=number] { width:5em; }
.v86b-bar button, .v86b-bar input { font:inherit; background:#232d3a; color:inherit; border:1px solid #3a4757; border-radius:4px; padding:1px 6px; }
.v86b-term { flex:1; min-height:0; padding:4px; position:relative; }
.v86b-overlay { position:absolute; inset:0; display:flex; align-items:center; justify-content:center; flex-direction:column; gap:.5em; background:#0f1419e0; z-index:5; text-align:center; padding:1em; }
.v86b-overlay[hidden] { display:none; }
.v86b-overlay button { font:inherit; font-size:15px; padding:.4em 1.2em; background:#2f6fd0; color:white; border:0; border-radius:5px; cursor:pointer; }
.v86b-progress { width:60%; max-width:300px; height:6px; background:#2b3542; border-radius:3px; overflow:hidden; }
.v86b-progress > div { height:100%; width:0; background:#5fa8ff; transition:width .15s; }
.v86b-error { color:#ff8a80; white-space:pre-wrap; font-family:ui-monospace,monospace; font-size:12px; max-height:100%; overflow:auto; text-align:left; }
.v86b.compact .v86b-bar { display:none; }
`;

/** Where the committed guest images are relative to this module: the site root's `guest/`. */
export function defaultImageBase(): string {
  if (import.meta.env.DEV) return DEFAULT_IMAGE_BASE;
  const rel = "../guest/"; // a variable keeps the bundler from treating it as an asset
  return new URL(rel, import.meta.url).href;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function mount(element: HTMLElement, options: MountOptions = {}): MountedVM {
  injectStyle("v86-balloon-embed-css", CSS);
  const root = el("div", "v86b" + (options.compact ? " compact" : ""));
  const bar = el("div", "v86b-bar");
  const status = el("span", "v86b-status", "not started");
  const targetLabel = el("label", undefined, "balloon ");
  const target = el("input");
  target.type = "number";
  target.min = "0";
  target.step = "8";
  target.value = "0";
  target.title = "balloon target in MiB";
  targetLabel.append(target, " MiB");
  targetLabel.hidden = true;
  bar.append(status, targetLabel);
  const termBox = el("div", "v86b-term");
  const overlay = el("div", "v86b-overlay");
  termBox.append(overlay);
  root.append(bar, termBox);
  element.append(root);

  let vmRef: VM | null = null;
  const terminal = new SerialTerminal(termBox, {
    fontSize: options.fontSize,
    onInput: (data) => vmRef?.send(data),
  });
  const memory = options.memory ?? 128;
  const features =
    typeof options.features === "string" ? parseFeatures(options.features) : (options.features ?? DEFAULT_FEATURES);
  let booting: Promise<MountedVM> | null = null;
  let statusTimer: ReturnType<typeof setInterval> | null = null;

  const showOverlay = (...children: (Node | string)[]) => {
    overlay.replaceChildren(...children);
    overlay.hidden = false;
  };

  const handle: MountedVM = {
    element: root,
    terminal,
    vm: null,
    balloon: null,
    boot: () => (booting ??= doBoot()),
    text: () => terminal.text(),
    destroy: async () => {
      if (statusTimer) clearInterval(statusTimer);
      const vm = handle.vm;
      handle.vm = vmRef = null;
      terminal.dispose();
      root.remove();
      await vm?.destroy();
    },
  };

  async function doBoot(): Promise<MountedVM> {
    const bar = el("div", "v86b-progress");
    const fill = el("div");
    bar.append(fill);
    const label = el("div", undefined, "loading guest images…");
    showOverlay(label, bar);
    status.textContent = `loading (${memory} MiB guest)`;
    let sawSerial = false;
    try {
      const { vm, balloon } = await bootGuest({
        memoryMiB: memory,
        features,
        floor: options.floor,
        images: { base: defaultImageBase(), ...options.images },
        cmdlineExtra: options.cmdlineExtra,
        bootTimeoutMs: options.bootTimeoutMs,
        onProgress: (l, t) => {
          fill.style.width = `${t ? Math.min(100, (100 * l) / t) : 0}%`;
          label.textContent = `loading guest images… ${(l / 1048576).toFixed(1)} MiB`;
        },
        onSerial: (text) => {
          if (!sawSerial) {
            sawSerial = true;
            overlay.hidden = true;
            status.textContent = "booting Linux…";
          }
          terminal.writeSerial(text);
        },
      });
      overlay.hidden = true;
      handle.vm = vmRef = vm;
      handle.balloon = balloon;
      status.textContent = `${memory} MiB guest ready`;
      if (balloon) {
        targetLabel.hidden = false;
        target.max = String(memory);
        target.addEventListener("change", () => {
          const mib = Math.max(0, Math.min(memory, Number(target.value) || 0));
          balloon.setTarget((mib * 1048576) / 4096);
        });
        statusTimer = setInterval(() => {
          const mib = (p: number) => ((p * 4096) / 1048576).toFixed(0);
          status.textContent = `${memory} MiB guest · balloon ${mib(balloon.actual)}/${mib(balloon.target)} MiB`;
        }, 500);
      }
      terminal.term.focus();
      if (options.commands) {
        for (const line of options.commands.split(/\n/)) if (line.trim()) vm.send(line.trim() + "\n");
      }
      options.onReady?.(handle);
      return handle;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const title =
        e instanceof LoadError && e.kind === "webassembly"
          ? "WebAssembly is not available"
          : e instanceof LoadError && e.kind === "file"
            ? "A guest file could not be loaded"
            : "The guest did not boot";
      const retry = el("button", undefined, "Retry");
      retry.addEventListener("click", () => {
        booting = null;
        void handle.boot();
      });
      showOverlay(el("strong", undefined, title), el("div", "v86b-error", err.message), retry);
      status.textContent = "error";
      options.onError?.(err);
      throw err;
    }
  }

  if (options.autostart === false) {
    const btn = el("button", undefined, `Boot Linux (${memory} MiB)`);
    btn.addEventListener("click", () => void handle.boot().catch(() => {}));
    showOverlay(btn);
  } else {
    void handle.boot().catch(() => {});
  }
  return handle;
}

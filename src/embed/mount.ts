/**
 * `mount(element, options)`: a terminal on a booted (or restored) guest inside any element, built to sit
 * on a documentation page: its own shadow root (no styles in or out), themed by CSS custom properties
 * (light / dark / the reader's prefers-color-scheme), `lazy` start when scrolled into view, paused while
 * off screen, never stealing focus, and `destroy()` frees the emulator.
 */
import type { VM } from "../vm.js";
import { DEFAULT_FEATURES, parseFeatures, type FeatureName } from "../vocabulary.js";
import { checkFloor, type FloorOption } from "../host/floor.js";
import type { BalloonLike } from "./balloon-types.js";
import { bootGuest, errorTitle, type ImageUrls, type StateSource } from "./boot.js";
import { adoptStyle, SerialTerminal } from "./terminal.js";

export interface MountOptions {
  /** Guest RAM in MiB (default 128; with `state`, the state's). */
  memory?: number;
  /** Balloon features offered: names (`"stats"`, ...) or one comma-separated string (with `state`: the state's). */
  features?: readonly FeatureName[] | string;
  /** Where the guest images are: `base` directory and/or single files. Default: the package's own. */
  images?: ImageUrls;
  /** Restore this state (`npx v86-balloon snapshot`) instead of booting: its URL, bytes or a File. */
  state?: StateSource;
  /** Typed into the shell once it is up (e.g. `"uname -a; free"`); newlines separate lines. */
  commands?: string;
  /** Terminal only: no status bar or balloon controls. */
  compact?: boolean;
  /** Boot at once (default), or show a Boot button. */
  autostart?: boolean;
  /** Boot (or restore) only once the element is scrolled into view. */
  lazy?: boolean;
  /** "light", "dark" or "auto" (default: the reader's prefers-color-scheme). */
  theme?: "light" | "dark" | "auto";
  /** Extra kernel command line. */
  cmdlineExtra?: string;
  /**
   * Memory the balloon always leaves to the guest (src/host/floor.ts): "auto" (default), "off", bytes as a
   * number, or a size in MiB as text ("64", "64M", as the `floor` attribute). A target beyond it is held there.
   */
  floor?: FloorOption | string;
  /** Terminal font size in px. */
  fontSize?: number;
  bootTimeoutMs?: number;
  /** Called once the shell prompt is up. */
  onReady?: (vm: MountedVM) => void;
  onError?: (error: Error) => void;
}

export interface MountedVM {
  /** The element the VM's shadow root is attached to. */
  readonly element: HTMLElement;
  readonly terminal: SerialTerminal;
  /** Set once booted. */
  vm: VM | null;
  balloon: BalloonLike | null;
  /** True while the emulator is stopped because the element is off screen. */
  readonly paused: boolean;
  /** Resolves when the prompt is up (boots if not yet started). */
  boot(): Promise<MountedVM>;
  /** The terminal's visible text (scrollback included). */
  text(): string;
  /** Stops the VM (also mid-boot), frees its emulator and removes what mount() added. */
  destroy(): Promise<void>;
}

/** Theme: every colour is a custom property the page may set on the element (`--v86b-bg: ...`). */
const CSS = `
:host { display:block; contain:content;
  --v86b-bg:#0f1419; --v86b-fg:#d8dee9; --v86b-bar-bg:#18202a; --v86b-border:#2b3542; --v86b-muted:#9fb0c3;
  --v86b-accent:#5fa8ff; --v86b-button-bg:#2f6fd0; --v86b-button-fg:#fff; --v86b-error:#ff8a80;
  --v86b-cursor:#ffcc66; --v86b-selection:#3b4b5c; --v86b-radius:6px;
  --v86b-font:13px/1.4 system-ui,sans-serif; --v86b-mono:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; }
:host(v86-balloon-vm) { height:360px; }
:host([hidden]) { display:none; }
@media (prefers-color-scheme: light) { :host(:not([data-v86b-theme=dark])) { LIGHT } }
:host([data-v86b-theme=light]) { LIGHT }
.v86b { display:flex; flex-direction:column; height:100%; box-sizing:border-box; font:var(--v86b-font); background:var(--v86b-bg);
  color:var(--v86b-fg); border:1px solid var(--v86b-border); border-radius:var(--v86b-radius); overflow:hidden; min-height:120px; }
.v86b-bar { display:flex; align-items:center; gap:.6em; padding:4px 8px; background:var(--v86b-bar-bg); border-bottom:1px solid var(--v86b-border); flex-wrap:wrap; }
.v86b-status { flex:1; min-width:10em; color:var(--v86b-muted); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.v86b-bar input { width:5em; font:inherit; background:transparent; color:inherit; border:1px solid var(--v86b-border); border-radius:4px; padding:1px 6px; }
.v86b-term { flex:1; min-height:0; padding:4px; position:relative; background:var(--v86b-bg); }
.v86b-overlay { position:absolute; inset:0; display:flex; align-items:center; justify-content:center; flex-direction:column; gap:.5em;
  background:color-mix(in srgb, var(--v86b-bg) 88%, transparent); z-index:5; text-align:center; padding:1em; }
.v86b-overlay[hidden] { display:none; }
.v86b-overlay button { font:inherit; font-size:15px; padding:.4em 1.2em; background:var(--v86b-button-bg); color:var(--v86b-button-fg); border:0; border-radius:5px; cursor:pointer; }
.v86b-progress { width:60%; max-width:300px; height:6px; background:var(--v86b-border); border-radius:3px; overflow:hidden; }
.v86b-progress > div { height:100%; width:0; background:var(--v86b-accent); transition:width .15s; }
.v86b-error { color:var(--v86b-error); white-space:pre-wrap; font-family:var(--v86b-mono); font-size:12px; max-height:100%; overflow:auto; text-align:left; }
.v86b.compact .v86b-bar { display:none; }
`.replace(
  /LIGHT/g,
  "--v86b-bg:#fbfbfd; --v86b-fg:#1d2430; --v86b-bar-bg:#eef1f5; --v86b-border:#cfd6df; --v86b-muted:#5b6777; --v86b-accent:#2f6fd0; --v86b-error:#b3261e; --v86b-cursor:#2f6fd0; --v86b-selection:#c8d7ee;",
);

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The element's shadow root, or one on a child when the element cannot have one (e.g. a <p>). */
function shadowFor(element: HTMLElement): { host: HTMLElement; root: ShadowRoot } {
  if (element.shadowRoot) return { host: element, root: element.shadowRoot };
  try {
    return { host: element, root: element.attachShadow({ mode: "open" }) };
  } catch {
    const host = element.appendChild(el("div"));
    host.style.height = "100%";
    return { host, root: host.attachShadow({ mode: "open" }) };
  }
}

/** Whether any part of `e` is in the viewport (layout, not IntersectionObserver: for the first decision). */
function onScreen(e: Element): boolean {
  const r = e.getBoundingClientRect();
  return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth && r.width > 0;
}

export function mount(element: HTMLElement, options: MountOptions = {}): MountedVM {
  const { host, root: shadow } = shadowFor(element);
  shadow.replaceChildren();
  adoptStyle(shadow, CSS);
  if (options.theme && options.theme !== "auto") host.dataset.v86bTheme = options.theme;
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
  shadow.append(root);

  let vmRef: VM | null = null;
  const terminal = new SerialTerminal(termBox, {
    fontSize: options.fontSize,
    styleRoot: shadow,
    themeFrom: host,
    onInput: (data) => vmRef?.send(data),
  });
  // Options are checked before anything starts; a bad one is shown in the element (below) and fails boot().
  let features: readonly FeatureName[] | undefined;
  let floor: FloorOption | undefined;
  let optionError: Error | null = null;
  try {
    features = typeof options.features === "string" ? parseFeatures(options.features) : options.features ?? (options.state ? undefined : DEFAULT_FEATURES);
    floor = options.floor === undefined ? undefined : checkFloor(options.floor);
  } catch (e) {
    optionError = e as Error;
  }
  let booting: Promise<MountedVM> | null = null;
  let statusTimer: ReturnType<typeof setInterval> | null = null;
  let visible = true;
  let paused = false;
  let abort: AbortController | null = null;
  let destroyed = false;

  const showOverlay = (...children: (Node | string)[]) => {
    overlay.replaceChildren(...children);
    overlay.hidden = false;
  };
  const showError = (title: string, err: Error, ...more: Node[]) => {
    showOverlay(el("strong", undefined, title), el("div", "v86b-error", err.message), ...more);
    status.textContent = "error";
  };

  // Off screen: stop the emulator (no CPU for a VM nobody sees); back on screen: run it again.
  const setVisible = (v: boolean) => {
    visible = v;
    const vm = handle.vm;
    if (!vm) return;
    if (!v && !paused) {
      paused = true;
      void vm.pause();
    } else if (v && paused) {
      paused = false;
      void vm.resume();
    }
  };
  const observer =
    typeof IntersectionObserver === "undefined"
      ? null
      : new IntersectionObserver((entries) => {
          const v = entries.some((e) => e.isIntersecting);
          if (v && options.lazy && !booting && options.autostart !== false) void handle.boot().catch(() => {});
          setVisible(v);
        });
  observer?.observe(host);

  const handle: MountedVM = {
    element: host,
    terminal,
    vm: null,
    balloon: null,
    get paused() {
      return paused;
    },
    boot: () => (booting ??= doBoot()),
    text: () => terminal.text(),
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      observer?.disconnect();
      abort?.abort(new Error("the element was removed"));
      if (statusTimer) clearInterval(statusTimer);
      const vm = handle.vm;
      handle.vm = vmRef = null;
      handle.balloon = null;
      terminal.dispose();
      shadow.replaceChildren();
      if (host !== element) host.remove();
      delete host.dataset.v86bTheme;
      await vm?.destroy();
    },
  };

  async function doBoot(): Promise<MountedVM> {
    const progress = el("div", "v86b-progress");
    const fill = el("div");
    progress.append(fill);
    const label = el("div", undefined, options.state ? "loading saved state…" : "loading guest images…");
    showOverlay(label, progress);
    status.textContent = options.state ? "restoring" : `loading (${options.memory ?? 128} MiB guest)`;
    let sawSerial = false;
    abort = new AbortController();
    try {
      const { vm, balloon, memoryMiB: mem } = await bootGuest({
        memoryMiB: options.memory,
        features,
        floor,
        state: options.state,
        images: options.images,
        cmdlineExtra: options.cmdlineExtra,
        bootTimeoutMs: options.bootTimeoutMs,
        signal: abort.signal,
        onProgress: (l, t) => {
          fill.style.width = `${t ? Math.min(100, (100 * l) / t) : 0}%`;
          label.textContent = `${options.state ? "loading saved state" : "loading guest images"}… ${(l / 1048576).toFixed(1)} MiB`;
        },
        onSerial: (text) => {
          if (!sawSerial && !options.state) {
            sawSerial = true;
            overlay.hidden = true;
            status.textContent = "booting Linux…";
          }
          terminal.writeSerial(text);
        },
      });
      abort = null;
      overlay.hidden = true;
      handle.vm = vmRef = vm;
      handle.balloon = balloon;
      status.textContent = `${mem} MiB guest ready`;
      targetLabel.hidden = false;
      target.max = String(mem);
      target.addEventListener("change", () => {
        const mib = Math.max(0, Math.min(mem, Number(target.value) || 0));
        // Shows what was set: a target past the floor is held below it.
        target.value = String(Math.round((balloon.setTarget((mib * 1048576) / 4096) * 4096) / 1048576));
      });
      statusTimer = setInterval(() => {
        const mib = (p: number) => ((p * 4096) / 1048576).toFixed(0);
        // A target past the floor is held below it: say so, and why (the floor's own sentence) on hover.
        const held = balloon.lastClamp;
        status.textContent = `${mem} MiB guest · balloon ${mib(balloon.actual)}/${mib(balloon.target)} MiB${held ? " · held by the floor" : ""}${paused ? " · paused" : ""}`;
        status.title = held ? held.limit.reason : "";
      }, 500);
      // Focus only a VM the reader can see, and only when nothing else on the page has focus.
      const active = document.activeElement;
      if (onScreen(host) && (!active || active === document.body)) terminal.term.focus();
      if (options.commands) {
        for (const line of options.commands.split(/\n/)) if (line.trim()) vm.send(line.trim() + "\n");
      }
      if (!visible) setVisible(false);
      options.onReady?.(handle);
      return handle;
    } catch (e) {
      abort = null;
      const err = e instanceof Error ? e : new Error(String(e));
      if (destroyed) throw err;
      const retry = el("button", undefined, "Retry");
      retry.addEventListener("click", () => {
        booting = null;
        void handle.boot().catch(() => {});
      });
      showError(errorTitle(e), err, retry);
      options.onError?.(err);
      throw err;
    }
  }

  if (optionError) {
    const err = optionError;
    showError("An option of this VM is not valid", err);
    booting = Promise.reject(err);
    booting.catch(() => {});
    // After mount() returns, so that the caller (or the element's listeners) is there to hear it.
    queueMicrotask(() => options.onError?.(err));
  } else if (options.autostart === false) {
    const btn = el("button", undefined, options.state ? "Start Linux" : `Boot Linux (${options.memory ?? 128} MiB)`);
    btn.addEventListener("click", () => void handle.boot().catch(() => {}));
    showOverlay(btn);
  } else if (options.lazy && observer) {
    showOverlay(el("div", undefined, "starts when scrolled into view"));
  } else {
    void handle.boot().catch(() => {});
  }
  return handle;
}

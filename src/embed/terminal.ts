/** xterm.js on the guest's serial console: batched output, fit to its box, copy/paste keys. */
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import xtermCss from "@xterm/xterm/css/xterm.css?inline";

/** Adds a <style> to the document once per id. */
export function injectStyle(id: string, css: string): void {
  if (typeof document === "undefined" || document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = css;
  document.head.append(style);
}

const sheets = new Map<string, CSSStyleSheet>();

/** Adds `css` to a shadow root; one constructed sheet per text is shared by every root on the page. */
export function adoptStyle(root: ShadowRoot, css: string): void {
  let sheet = sheets.get(css);
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    sheets.set(css, sheet);
  }
  if (!root.adoptedStyleSheets.includes(sheet)) root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
}

/**
 * Replies xterm.js sends on the guest's behalf (cursor position reports `ESC[row;colR`, device
 * attributes `ESC[?...c`). A shell asks for the cursor position at each prompt; a reply arriving after
 * typed `commands` would be read as input and echoed as `^[[23;5R`. Nothing here needs them.
 */
const TERMINAL_REPLY = /\x1b\[\??[\d;]*[Rc]/g;

export interface SerialTerminalOptions {
  fontSize?: number;
  /** Keys typed / text pasted by the user. */
  onInput?: (data: string) => void;
  /** Where xterm's CSS goes: a shadow root (isolated), else the document. */
  styleRoot?: ShadowRoot;
  /** Element whose `--v86b-*` custom properties give the terminal's colours (re-read on theme changes). */
  themeFrom?: HTMLElement;
}

/** xterm's colours from the `--v86b-*` custom properties on `from`. */
function themeOf(from: HTMLElement | undefined) {
  const fallback = { background: "#0f1419", foreground: "#d8dee9", cursor: "#ffcc66", selectionBackground: "#3b4b5c" };
  if (!from) return fallback;
  const css = getComputedStyle(from);
  const v = (name: string, d: string) => css.getPropertyValue(name).trim() || d;
  return {
    background: v("--v86b-bg", fallback.background),
    foreground: v("--v86b-fg", fallback.foreground),
    cursor: v("--v86b-cursor", fallback.cursor),
    selectionBackground: v("--v86b-selection", fallback.selectionBackground),
  };
}

export class SerialTerminal {
  readonly term: Terminal;
  readonly fit = new FitAddon();
  private pending: number[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private resize: ResizeObserver | null = null;
  private colorScheme: MediaQueryList | null = null;
  private onScheme: (() => void) | null = null;
  private themeObserver: MutationObserver | null = null;
  private disposed = false;

  constructor(
    readonly container: HTMLElement,
    opts: SerialTerminalOptions = {},
  ) {
    if (opts.styleRoot) adoptStyle(opts.styleRoot, xtermCss);
    else injectStyle("v86-balloon-xterm-css", xtermCss);
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: true,
      fontSize: opts.fontSize ?? 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      scrollback: 5000,
      theme: themeOf(opts.themeFrom),
    });
    if (opts.themeFrom && typeof matchMedia === "function") {
      const from = opts.themeFrom;
      this.colorScheme = matchMedia("(prefers-color-scheme: light)");
      this.onScheme = () => (this.term.options.theme = themeOf(from));
      this.colorScheme.addEventListener("change", this.onScheme);
      this.themeObserver = new MutationObserver(this.onScheme);
      this.themeObserver.observe(from, { attributes: true, attributeFilter: ["data-v86b-theme", "style", "class"] });
    }
    this.term.loadAddon(this.fit);
    this.term.open(container);
    let escAt = -Infinity;
    this.term.attachCustomKeyEventHandler((ev) => {
      // Esc then Tab (or Shift+Tab) within a second leaves the terminal: returning false lets the
      // browser move focus as for any other element. Tab alone goes to the guest (shell completion).
      if (ev.type === "keydown" && ev.key === "Escape") escAt = ev.timeStamp;
      else if (ev.type === "keydown" && ev.key === "Tab" && ev.timeStamp - escAt < 1000) return false;
      else if (ev.type === "keydown" && ev.key !== "Shift") escAt = -Infinity;
      // Ctrl+Shift+C copies the selection; Ctrl+Shift+V lets the browser paste (xterm sends it on).
      if (ev.type === "keydown" && ev.ctrlKey && ev.shiftKey && ev.code === "KeyC") {
        void this.copySelection();
        return false;
      }
      if (ev.ctrlKey && ev.shiftKey && ev.code === "KeyV") return false;
      return true;
    });
    const onInput = opts.onInput;
    if (onInput) {
      this.term.onData((data) => {
        const keys = data.replace(TERMINAL_REPLY, "");
        if (keys) onInput(keys);
      });
    }
    this.refit();
    if (typeof ResizeObserver !== "undefined") {
      this.resize = new ResizeObserver(() => this.refit());
      this.resize.observe(container);
    }
  }

  refit(): void {
    if (this.container.clientWidth > 0 && this.container.clientHeight > 0) {
      try {
        this.fit.fit();
      } catch {
        /* not laid out yet */
      }
    }
  }

  /** One serial character (a byte as char code 0..255); flushed to xterm in batches, decoded as UTF-8. */
  writeSerial(text: string): void {
    if (this.disposed) return; // the guest may print until its emulator is gone
    for (let i = 0; i < text.length; i++) this.pending.push(text.charCodeAt(i) & 0xff);
    this.flushTimer ??= setTimeout(() => this.flush(), 16);
  }

  flush(): void {
    this.flushTimer = null;
    if (!this.pending.length) return;
    const bytes = Uint8Array.from(this.pending);
    this.pending = [];
    this.term.write(bytes);
  }

  /** A plain line of text from the page (not from the guest), e.g. a status message. */
  note(text: string): void {
    this.flush();
    this.term.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`);
  }

  async copySelection(): Promise<boolean> {
    const sel = this.term.getSelection();
    if (!sel) return false;
    try {
      await navigator.clipboard.writeText(sel);
      return true;
    } catch {
      return false;
    }
  }

  async pasteFromClipboard(): Promise<boolean> {
    try {
      const text = await navigator.clipboard.readText();
      if (text) this.term.paste(text);
      return !!text;
    } catch {
      return false;
    }
  }

  /** The terminal's text as shown (scrollback + screen), trailing blanks trimmed; for tests. */
  text(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) {
      const line = buf.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    while (lines.length && !lines[lines.length - 1]) lines.pop();
    return lines.join("\n");
  }

  dispose(): void {
    this.disposed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.pending = [];
    this.resize?.disconnect();
    this.themeObserver?.disconnect();
    if (this.onScheme) this.colorScheme?.removeEventListener("change", this.onScheme);
    this.term.dispose();
  }
}

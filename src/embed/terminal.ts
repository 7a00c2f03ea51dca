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

export interface SerialTerminalOptions {
  fontSize?: number;
  /** Keys typed / text pasted by the user. */
  onInput?: (data: string) => void;
}

export class SerialTerminal {
  readonly term: Terminal;
  readonly fit = new FitAddon();
  private pending: number[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private resize: ResizeObserver | null = null;

  constructor(
    readonly container: HTMLElement,
    opts: SerialTerminalOptions = {},
  ) {
    injectStyle("v86-balloon-xterm-css", xtermCss);
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: true,
      fontSize: opts.fontSize ?? 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      scrollback: 5000,
      theme: { background: "#0f1419", foreground: "#d8dee9", cursor: "#ffcc66", selectionBackground: "#3b4b5c" },
    });
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
    if (opts.onInput) this.term.onData(opts.onInput);
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
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.resize?.disconnect();
    this.term.dispose();
  }
}

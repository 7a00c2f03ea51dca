/** The serial console panel: xterm.js terminal plus copy / paste / clear buttons. */
import { SerialTerminal } from "../embed/terminal.js";
import { $ } from "./dom.js";

export function createTerminalPanel(send: (data: string) => void): SerialTerminal {
  const term = new SerialTerminal($("terminal"), { onInput: send });
  $("term-copy").addEventListener("click", async () => {
    const ok = await term.copySelection();
    flash($("term-copy"), ok ? "Copied" : "Nothing selected");
    term.term.focus();
  });
  $("term-paste").addEventListener("click", async () => {
    const ok = await term.pasteFromClipboard();
    if (!ok) flash($("term-paste"), "Use Ctrl+Shift+V");
    term.term.focus();
  });
  $("term-clear").addEventListener("click", () => {
    term.term.clear();
    term.term.focus();
  });
  return term;
}

function flash(button: HTMLElement, text: string): void {
  const old = button.dataset.label ?? button.textContent ?? "";
  button.dataset.label = old;
  button.textContent = text;
  setTimeout(() => (button.textContent = old), 1200);
}

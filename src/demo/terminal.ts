/** The serial console panel: xterm.js terminal plus copy / paste / clear buttons that say what they did. */
import { SerialTerminal } from "../embed/terminal.js";
import { $, h } from "./dom.js";

export function createTerminalPanel(send: (data: string) => void): SerialTerminal {
  const term = new SerialTerminal($("terminal"), { onInput: send });
  // Button feedback is spoken too (a changed button label alone is not announced).
  const note = h("span", { id: "term-note", class: "muted term-note", role: "status", "aria-live": "polite" });
  $("term-copy").parentElement!.prepend(note);
  let clearNote: ReturnType<typeof setTimeout> | undefined;
  const say = (text: string) => {
    note.textContent = text;
    clearTimeout(clearNote);
    clearNote = setTimeout(() => (note.textContent = ""), 4000);
  };
  $("term-copy").addEventListener("click", async () => {
    const n = term.term.getSelection().length;
    if (!n) say("Nothing selected: select text in the terminal first");
    else say((await term.copySelection()) ? `Copied ${n} character${n > 1 ? "s" : ""}` : "The browser refused the clipboard: use Ctrl+Shift+C");
    term.term.focus();
  });
  $("term-paste").addEventListener("click", async () => {
    const ok = await term.pasteFromClipboard();
    say(ok ? "Pasted" : "Nothing pasted (empty clipboard or no permission): use Ctrl+Shift+V");
    term.term.focus();
  });
  $("term-clear").addEventListener("click", () => {
    term.term.clear();
    say("Cleared");
    term.term.focus();
  });
  return term;
}

/**
 * What the page does with the guest's serial output before the terminal shows it:
 *  - watches complete lines for a guest in trouble (kernel panic, OOM kill, the balloon driver's
 *    "Out of puff") and counts kernel log lines for the boot progress;
 *  - collapses runs of identical lines (printk timestamps ignored) into one line and a "repeated N times"
 *    note, so a flooding guest leaves a readable terminal;
 *  - tells the guest the terminal's size (`stty rows R cols C`) whenever it changes, typed only while the
 *    shell is idle at its prompt, with the echo hidden (shown after all if anything unexpected comes back).
 */
import { PROMPT } from "../vm.js";

export type TroubleKind = "panic" | "oom" | "out-of-puff";
export interface Trouble {
  kind: TroubleKind;
  line: string;
}

const TROUBLE: [TroubleKind, RegExp][] = [
  ["panic", /Kernel panic - not syncing/],
  ["oom", /Out of memory/],
  ["out-of-puff", /Out of puff/],
];

/** A held partial line is shown after this long even if it might still become a repeat (longer within a run). */
const HOLD_MS = 30;
const HOLD_IN_RUN_MS = 1000;
/** A hidden `stty` that does not come back as expected within this long is shown after all. */
const SILENT_MS = 3000;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[78=>]/g;
const TIMESTAMP = /^\[\s*\d+\.\d+\]\s?/;

/** A line as compared for repeats: no CR, no escape sequences, no printk timestamp. */
export function lineKey(raw: string): string {
  return raw.replace(/\r/g, "").replace(ANSI, "").replace(TIMESTAMP, "");
}

/** The trouble a console line reports, with the line from the kernel's words on (a prompt may precede them). */
export function troubleOf(line: string): Trouble | null {
  const text = lineKey(line);
  for (const [kind, re] of TROUBLE) {
    const m = re.exec(text);
    if (m) return { kind, line: text.slice(m.index).trim() };
  }
  return null;
}

export interface ConsoleStreamOptions {
  /** Text for the terminal. */
  out: (text: string) => void;
  /** Typed into the guest; null until the guest can take input. */
  send: (text: string) => void;
  onLine?: (line: string) => void;
  onTrouble?: (t: Trouble) => void;
}

export class ConsoleStream {
  /** Complete lines seen. */
  lines = 0;
  /** Identical lines not shown so far (all runs). */
  collapsed = 0;
  /** Size last confirmed by the guest (rows, cols), null until then. */
  guestSize: [number, number] | null = null;
  private line = "";
  private held = "";
  private prevKey = "";
  private repeats = 0;
  private holdTimer: ReturnType<typeof setTimeout> | null = null;
  /** The displayed output ends with the prompt and nothing was typed since. */
  private idle = false;
  private wanted: [number, number] | null = null;
  private connected = false;
  private silent: { expect: string; got: string; size: [number, number]; timer: ReturnType<typeof setTimeout> } | null = null;

  constructor(private readonly opts: ConsoleStreamOptions) {}

  /** The guest takes input from now on (the terminal size may be sent). */
  connect(): void {
    this.connected = true;
    this.trySendSize();
  }

  /** The user typed something: the shell is no longer idle at an empty prompt. */
  typed(): void {
    this.idle = false;
  }

  /** The terminal now has this size: tell the guest as soon as its shell is idle. */
  resize(rows: number, cols: number): void {
    if (rows < 1 || cols < 1) return;
    this.wanted = [rows, cols];
    this.trySendSize();
  }

  write(text: string): void {
    if (this.silent) {
      this.silent.got += text;
      this.checkSilent();
      return;
    }
    for (const c of text) this.char(c);
    if (this.held && !this.holdTimer) this.holdTimer = setTimeout(() => this.release(), this.repeats ? HOLD_IN_RUN_MS : HOLD_MS);
    this.tail = (this.tail + text).slice(-64);
    // ash follows its prompt with a cursor position query (ESC [6n).
    this.idle = this.tail.replace(ANSI, "").endsWith(PROMPT);
    this.trySendSize();
  }

  private tail = "";

  private emit(text: string): void {
    if (text) this.opts.out(text);
  }

  private char(c: string): void {
    this.line += c;
    if (c === "\n") {
      const raw = this.line;
      this.line = "";
      this.lines++;
      this.opts.onLine?.(raw);
      const t = troubleOf(raw);
      if (t) this.opts.onTrouble?.(t);
      const key = lineKey(raw).trimEnd();
      // Empty lines and bare prompts (Enter pressed a few times) stay as they are.
      if (key && key === this.prevKey && key !== PROMPT.trimEnd()) {
        this.repeats++;
        this.collapsed++;
        this.held = "";
        return;
      }
      this.endRun();
      this.emit(this.held + c);
      this.held = "";
      this.prevKey = key;
      return;
    }
    // Hold the line back while it may still turn out to repeat the previous one.
    const partial = lineKey(this.line);
    const mayRepeat = this.prevKey !== "" && (this.prevKey.startsWith(partial) || /^\[[\s\d.]*$/.test(this.line));
    if (mayRepeat && (this.held || this.line.length === 1)) {
      this.held += c;
      return;
    }
    // The line differs: say how many were collapsed before it starts (its \r would overwrite the note).
    this.endRun();
    this.emit(this.held + c);
    this.held = "";
  }

  /** A run of repeats ended: say how many lines were not shown. */
  private endRun(): void {
    if (!this.repeats) return;
    this.emit(`\x1b[2m  ... the line above repeated ${this.repeats} more time${this.repeats > 1 ? "s" : ""}\x1b[0m\r\n`);
    this.repeats = 0;
  }

  private release(): void {
    this.holdTimer = null;
    if (!this.held) return;
    this.endRun();
    this.emit(this.held);
    this.held = "";
  }

  private trySendSize(): void {
    if (!this.wanted || this.silent || !this.idle || !this.connected) return;
    const size = this.wanted;
    if (this.guestSize && size[0] === this.guestSize[0] && size[1] === this.guestSize[1]) {
      this.wanted = null;
      return;
    }
    this.wanted = null;
    const cmd = `stty rows ${size[0]} cols ${size[1]}`;
    this.silent = { expect: `${cmd}\n${PROMPT}`, got: "", size, timer: setTimeout(() => this.giveUpSilent(), SILENT_MS) };
    this.opts.send(cmd + "\n");
  }

  private checkSilent(): void {
    const s = this.silent!;
    const got = s.got.replace(/\r/g, "").replace(ANSI, "");
    if (got === s.expect) {
      clearTimeout(s.timer);
      this.silent = null;
      this.guestSize = s.size;
      this.trySendSize();
    } else if (!s.expect.startsWith(got)) this.giveUpSilent();
  }

  /** Something else came back (an error, the user's typing): show it all. */
  private giveUpSilent(): void {
    const s = this.silent;
    if (!s) return;
    clearTimeout(s.timer);
    this.silent = null;
    this.write(s.got);
  }
}

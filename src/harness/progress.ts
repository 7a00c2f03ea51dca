/** Progress display: one redrawn status line on a TTY, plain lines otherwise. */
import type { HarnessEvent } from "./types.js";

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Progress {
  private done = 0;
  private failed = 0;
  private current = new Map<string, string>();
  private readonly t0 = Date.now();
  private timer: ReturnType<typeof setInterval> | null = null;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly out: ProgressStream = process.stderr,
    private readonly tty = !!out.isTTY,
  ) {
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 500);
      this.timer.unref?.();
    }
  }

  private elapsed(): string {
    return `${((Date.now() - this.t0) / 1000).toFixed(1)}s`;
  }

  private line(text: string): void {
    if (this.tty && this.drawn) this.out.write("\r\x1b[K");
    this.out.write(text + "\n");
    this.drawn = false;
    if (this.tty) this.draw();
  }

  private draw(): void {
    if (!this.tty) return;
    const cur = [...this.current.values()].join(", ") || "-";
    let s = `[${this.done}/${this.total}] ${this.failed ? `${this.failed} failed, ` : ""}${this.elapsed()}  running: ${cur}`;
    const cols = this.out.columns ?? 100;
    if (s.length > cols - 1) s = s.slice(0, cols - 2) + "…";
    this.out.write("\r\x1b[K" + s);
    this.drawn = true;
  }

  event(e: HarnessEvent): void {
    switch (e.type) {
      case "boot-start":
        if (!this.tty) this.line(`# boot ${e.group}`);
        else this.current.set(e.group, "(booting)");
        break;
      case "boot-end":
        if (!e.ok) this.line(`# boot FAILED after ${(e.ms / 1000).toFixed(1)}s: ${e.group}`);
        else if (!this.tty) this.line(`# booted in ${(e.ms / 1000).toFixed(1)}s`);
        break;
      case "restore-end":
        if (!this.tty) this.line(`# snapshot restored in ${(e.ms / 1000).toFixed(2)}s (${(e.bytes / 1048576).toFixed(1)} MiB)`);
        break;
      case "test-start":
        this.current.set(e.group, e.name);
        if (this.tty) this.draw();
        else this.line(`# [${this.done + 1}/${this.total}] ${e.name} (${e.test})`);
        break;
      case "test-end": {
        this.done++;
        const r = e.result;
        if (!r.ok) this.failed++;
        this.current.delete(e.group);
        const verdict = r.skipped ? "skip" : r.ok ? "ok  " : "FAIL";
        this.line(`${verdict} ${r.name} (${(r.durationMs / 1000).toFixed(1)}s) [${this.done}/${this.total}, ${this.elapsed()}]`);
        if (!r.ok) for (const f of r.failures.slice(0, 5)) this.line(`     ${f.split("\n")[0]}`);
        break;
      }
      case "group-end":
        this.current.delete(e.group);
        break;
      default:
        break;
    }
  }

  /** A line of its own (pre-flight notes, ...). */
  note(text: string): void {
    this.line(`# ${text}`);
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty && this.drawn) this.out.write("\r\x1b[K");
    this.drawn = false;
  }
}

/**
 * The guest console as lines, and "run a shell command, get its lines and exit status" on top of it,
 * independent of terminal echo (the harness switches echo off with `stty -echo`; busybox's line editor then
 * falls back to plain reads, so typed text is neither echoed nor tab-completed).
 */

export class TimeoutError extends Error {
  constructor(message: string, readonly lastLines: string) {
    super(message);
  }
}

type LineListener = (line: string) => void;

export class SerialLines {
  private partial = "";
  private listeners = new Set<LineListener>();
  /** Recent complete lines (ring). */
  private recent: string[] = [];
  /** Lines since `startCapture()` (capped). */
  private captured: string[] | null = null;
  private capturedChars = 0;
  static readonly RECENT = 400;
  static readonly CAPTURE_MAX_CHARS = 4 << 20;

  /** Feed raw serial text. */
  push(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf("\n")) >= 0) {
      // eslint-disable-next-line no-control-regex
      const line = this.partial.slice(0, nl).replace(/\r/g, "").replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
      this.partial = this.partial.slice(nl + 1);
      this.recent.push(line);
      if (this.recent.length > SerialLines.RECENT * 2) this.recent = this.recent.slice(-SerialLines.RECENT);
      if (this.captured && this.capturedChars < SerialLines.CAPTURE_MAX_CHARS) {
        this.captured.push(line);
        this.capturedChars += line.length + 1;
      }
      for (const l of [...this.listeners]) l(line);
    }
  }

  onLine(fn: LineListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  lastLines(n = 30): string {
    const lines = [...this.recent.slice(-n)];
    if (this.partial) lines.push(this.partial.replace(/\r/g, ""));
    return lines.slice(-n).join("\n");
  }

  startCapture(): void {
    this.captured = [];
    this.capturedChars = 0;
  }

  stopCapture(): string[] {
    const c = this.captured ?? [];
    this.captured = null;
    return c;
  }
}

export interface ExecResult {
  status: number;
  lines: string[];
  ms: number;
}

/** Runs commands at the guest's interactive shell. One at a time. */
export class GuestShell {
  private counter = 0;

  constructor(
    private readonly serial: SerialLines,
    private readonly send: (text: string) => void,
  ) {}

  /**
   * Types `cmd` (one line, < 4000 bytes: the tty's canonical line limit) and resolves with the lines it
   * printed and its exit status. `onLine` sees each output line as it arrives.
   */
  exec(cmd: string, timeoutMs: number, onLine?: (line: string) => void): Promise<ExecResult> {
    if (cmd.includes("\n")) throw new Error("exec: one line only");
    const id = `${++this.counter}_${Math.random().toString(36).slice(2, 7)}`;
    // The markers are split by "" in the typed text, so an echo of the line never matches them.
    const begin = `__HB${id}__`;
    const endRe = new RegExp(`__HE${id}_(\\d+)__`);
    const line = `echo __HB${id}""__; ${cmd}; echo __HE${id}""_$?__\n`;
    if (line.length > 4000) throw new Error(`exec: command line too long (${line.length} bytes)`);
    const t0 = Date.now();
    return new Promise<ExecResult>((resolve, reject) => {
      let started = false;
      const lines: string[] = [];
      const off = this.serial.onLine((l) => {
        if (!started) {
          if (l.endsWith(begin)) started = true;
          return;
        }
        const m = endRe.exec(l);
        if (m) {
          const before = l.slice(0, m.index);
          if (before) {
            lines.push(before);
            onLine?.(before);
          }
          cleanup();
          resolve({ status: Number(m[1]), lines, ms: Date.now() - t0 });
          return;
        }
        lines.push(l);
        onLine?.(l);
      });
      const timer = setTimeout(() => {
        cleanup();
        const last = this.serial.lastLines(30);
        reject(new TimeoutError(`timed out after ${timeoutMs} ms running \`${cmd.slice(0, 120)}\`; last serial lines:\n${last}`, last));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        off();
      };
      this.send(line);
    });
  }

  findShell(timeoutMs: number, everyMs: number): Promise<number> {
    const t0 = Date.now();
    const ids = new Set<string>();
    return new Promise<number>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let interval = everyMs;
      const off = this.serial.onLine((l) => {
        const m = /__HE(\w+?)_\d+__$/.exec(l);
        if (!m || !ids.has(m[1])) return;
        done();
        resolve(Date.now() - t0);
      });
      const deadline = setTimeout(() => {
        done();
        reject(
          new ShellNotFound(
            `no shell answered on the serial console within ${timeoutMs} ms (the harness typed \`echo __HB<id>__\` lines ` +
              `and waited for one to come back; the initramfs must run a POSIX shell on ttyS0, ` +
              `see "The initramfs contract" in src/harness/README.md)`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        off();
        clearTimeout(timer);
        clearTimeout(deadline);
      };
      const probe = () => {
        const id = `${++this.counter}_${Math.random().toString(36).slice(2, 7)}`;
        ids.add(id);
        this.send(`echo __HB${id}""__; true; echo __HE${id}""_$?__\n`);
        timer = setTimeout(probe, interval);
        interval = Math.min(interval * 2, 8000);
      };
      probe();
    });
  }

  /** Like exec, but throws on a non-zero status. Returns the output lines. */
  async check(cmd: string, timeoutMs = 30000): Promise<string[]> {
    const r = await this.exec(cmd, timeoutMs);
    if (r.status !== 0) throw new Error(`\`${cmd.slice(0, 200)}\` exited with ${r.status}: ${r.lines.slice(-10).join("\n")}`);
    return r.lines;
  }
}

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as unknown as ArrayBuffer);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export const UPLOAD_CHUNK = 3600;

/**
 * Copies `content` to `path` in the guest: base64 in chunks of one shell line each (every chunk waits for
 * the shell, so the tty's 4 KiB input buffer never overflows), decoded in the guest and checked by SHA-256.
 */
export async function uploadFile(shell: GuestShell, path: string, content: string, mode = "0755"): Promise<{ chunks: number; ms: number }> {
  const t0 = Date.now();
  const bytes = utf8(content);
  const b64 = toBase64(bytes);
  const tmp = `${path}.b64`;
  const dir = path.replace(/\/[^/]*$/, "") || "/";
  await shell.check(`mkdir -p ${dir} && : > ${tmp}`);
  let chunks = 0;
  for (let i = 0; i < b64.length; i += UPLOAD_CHUNK) {
    await shell.check(`printf %s '${b64.slice(i, i + UPLOAD_CHUNK)}' >> ${tmp}`);
    chunks++;
  }
  const out = await shell.check(`base64 -d ${tmp} > ${path} && rm -f ${tmp} && chmod ${mode} ${path} && sha256sum ${path}`);
  // Pick sha256sum's own line: kernel messages on the console can land in the output too.
  const line = out.find((l) => l.trim().endsWith(` ${path}`)) ?? "";
  const got = (line.trim().split(/\s+/)[0] ?? "").toLowerCase();
  const want = await sha256Hex(bytes);
  if (got !== want) throw new Error(`upload of ${path} corrupted: guest sha256 ${got || "(none)"}, host ${want}`);
  return { chunks, ms: Date.now() - t0 };
}

/** Kernel reports that fail a test at once (`--crash-on` replaces them). */
export const DEFAULT_CRASH_PATTERNS = ["Kernel panic", "Oops", "BUG:", "WARNING:"];

/** A kernel crash report seen on the console: the line that matched and the report around it. */
export class KernelCrash extends Error {
  constructor(
    readonly line: string,
    readonly excerpt: string,
  ) {
    super(`kernel crash: ${line}\n${excerpt}`);
  }
}

/** Where a kernel report ends (the report is complete, or the kernel stopped). */
const REPORT_END = /---\[ end (trace|Kernel panic)/;
/** A report still in progress gets this long to finish before the excerpt is cut. */
const REPORT_GRACE_MS = 1500;

/**
 * Watches the console for kernel crash reports (`Kernel panic`, `Oops`, `BUG:`, `WARNING:`, printed by
 * printk at the start of a line, optionally after its timestamp). `crashed` rejects with a KernelCrash once
 * the report has ended (or the grace time passed), with the lines before and after the first match.
 */
export class CrashWatch {
  private off: () => void;
  readonly crashed: Promise<never>;
  /** Set as soon as a crash line appears (before the excerpt is complete). */
  first: string | null = null;

  constructor(serial: SerialLines, patterns: readonly string[] = DEFAULT_CRASH_PATTERNS) {
    const escaped = patterns.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const re = escaped.length ? new RegExp(`^(\\[\\s*\\d+\\.\\d+\\]\\s*)?(${escaped.join("|")})`) : null;
    let fail: (e: KernelCrash) => void = () => {};
    this.crashed = new Promise<never>((_, reject) => (fail = reject));
    this.crashed.catch(() => {}); // observed by whoever races it; never an unhandled rejection
    let report: string[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      clearTimeout(timer);
      this.off();
      fail(new KernelCrash(this.first!, report.join("\n")));
    };
    this.off = serial.onLine((line) => {
      if (this.first === null) {
        if (!re || !re.test(line)) return;
        this.first = line.replace(/^\[\s*\d+\.\d+\]\s*/, "");
        report = serial.lastLines(12).split("\n");
        timer = setTimeout(finish, REPORT_GRACE_MS);
        return;
      }
      report.push(line);
      if (REPORT_END.test(line) || report.length > 120) finish();
    });
  }

  stop(): void {
    this.off();
  }
}

/** Thrown when the guest never answered: names what the harness waited for. */
export class ShellNotFound extends Error {}

/**
 * Finds the guest's shell without knowing its prompt: types a marker command, then again every `everyMs`
 * (doubling up to 8 s, so a slow guest's tty is not flooded), and resolves when any of them comes back:
 * on a loaded host a probe's answer may well arrive after the next probe was typed. Late answers of the
 * other probes are ignored later (each exec waits for its own markers).
 */
export function findShell(shell: GuestShell, timeoutMs: number, everyMs = 1000): Promise<number> {
  return shell.findShell(timeoutMs, everyMs);
}

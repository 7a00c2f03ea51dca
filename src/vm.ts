/**
 * A v86 VM running the project's Linux guest, with serial I/O and "type a command, get its output".
 * Platform-neutral: `vm-node.ts` and `vm-browser.ts` load the images and the v86 wasm for their side.
 */
import { V86 } from "v86";
import { stopPromptly } from "./v86/adapter.js";

export interface GuestImages {
  bios: ArrayBuffer;
  vgaBios: ArrayBuffer;
  kernel: ArrayBuffer;
  initrd: ArrayBuffer;
  /** The cmdline the images were built to boot with (manifest.json). */
  cmdline: string;
}

export interface VMOptions {
  /** Guest RAM in MiB (default 128; keep <= ~890, the guest has no HIGHMEM). */
  memoryMiB?: number;
  /** Appended to the image's default kernel cmdline (e.g. "init_on_alloc=1"). */
  cmdlineExtra?: string;
  /** Replaces the kernel cmdline entirely. */
  cmdline?: string;
  /** Milliseconds to wait for the shell prompt (default 60000). */
  bootTimeoutMs?: number;
  /** Every serial byte the guest prints, as text. */
  onSerial?: (text: string) => void;
  /**
   * Called once v86's devices exist and before the guest runs: the place to plug devices in.
   * (The balloon is attached here by `startBalloonVM`.)
   */
  onReady?: (emulator: V86, vm: VM) => void | Promise<void>;
  /** Start from a saved state instead of booting (`images.kernel`/`initrd` are then not used). */
  initialState?: ArrayBuffer;
  /**
   * Resolve once the emulator runs instead of waiting for the project's prompt: for callers that find
   * the shell their own way (the test harness, which boots initramfs images with any prompt).
   */
  noPromptWait?: boolean;
  /** Aborting stops and destroys the emulator at once; startVM then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** v86's own built-in balloon (counts pages only): for side-by-side benchmarks, never with ours. */
  builtinBalloon?: boolean;
}

/** The prompt the guest's /init sets (PS1). */
export const PROMPT = "~ # ";
const SERIAL_KEEP = 64 * 1024;

export class BootError extends Error {}

export class VM {
  private log = "";
  private waiters: { test: (log: string) => boolean; resolve: () => void }[] = [];
  private runCounter = 0;

  constructor(readonly emulator: V86, onSerial?: (text: string) => void) {
    emulator.add_listener("serial0-output-byte", (byte: number) => {
      const ch = String.fromCharCode(byte);
      this.log += ch;
      if (this.log.length > 2 * SERIAL_KEEP) this.log = this.log.slice(-SERIAL_KEEP);
      onSerial?.(ch);
      if (this.waiters.length) this.checkWaiters();
    });
  }

  /** Everything the guest printed recently (the last 64..128 KiB). */
  get serialLog(): string {
    return this.log;
  }

  /** The last `n` lines of serial output, for error messages. */
  lastLines(n = 20): string {
    return this.log.replace(/\r/g, "").split("\n").slice(-n).join("\n");
  }

  send(text: string): void {
    this.emulator.serial0_send(text);
  }

  /** Resolves when serial output printed after this call matches `pattern`. */
  async waitFor(pattern: string | RegExp, timeoutMs = 30000, what = String(pattern)): Promise<string> {
    const start = this.log.length;
    const test = (log: string) => {
      const tail = log.slice(Math.min(start, log.length));
      return typeof pattern === "string" ? tail.includes(pattern) : pattern.test(tail);
    };
    await new Promise<void>((resolve, reject) => {
      const waiter = { test, resolve };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new BootError(`timed out after ${timeoutMs} ms waiting for ${what}; last serial lines:\n${this.lastLines()}`));
      }, timeoutMs);
      waiter.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(waiter);
      this.checkWaiters();
    });
    return this.log.slice(start);
  }

  private checkWaiters(): void {
    const done = this.waiters.filter((w) => w.test(this.log));
    if (!done.length) return;
    this.waiters = this.waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve();
  }

  /**
   * Types `command` at the shell and returns what it printed (without the echo or the prompt).
   * Throws if the exit status is non-zero unless `allowFailure`.
   */
  async run(command: string, opts: { timeoutMs?: number; allowFailure?: boolean } = {}): Promise<string> {
    const id = ++this.runCounter;
    // Markers are split in the typed line ("" inside) so the terminal's echo of it never matches.
    const begin = `__RUN${id}_BEGIN__\n`;
    const end = new RegExp(`__RUN${id}_END_(\\d+)__`);
    const start = this.log.length;
    this.send(`echo __RUN${id}_""BEGIN__; ${command}; echo __RUN${id}_""END_$?__\n`);
    await this.waitFor(end, opts.timeoutMs ?? 30000, `the end of \`${command}\``);
    const text = this.log.slice(start).replace(/\r/g, "");
    const m = end.exec(text)!;
    const from = text.indexOf(begin);
    const output = text.slice(from + begin.length, m.index);
    const status = Number(m[1]);
    if (status !== 0 && !opts.allowFailure) {
      throw new Error(`\`${command}\` exited with ${status}:\n${output}`);
    }
    return output;
  }

  /** Stops the emulated CPU (the guest sees a jump in time when it resumes). */
  async pause(): Promise<void> {
    await this.emulator.stop();
  }

  async resume(): Promise<void> {
    await this.emulator.run();
  }

  async saveState(): Promise<ArrayBuffer> {
    return this.emulator.save_state();
  }

  async restoreState(state: ArrayBuffer): Promise<void> {
    await this.emulator.restore_state(state);
  }

  private cleanups: (() => void)[] = [];

  /** Runs `fn` when the VM is destroyed: a plugged-in device's timers, which would keep it (and its RAM) alive. */
  onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  async destroy(): Promise<void> {
    for (const fn of this.cleanups.splice(0)) fn();
    const stopped = this.emulator.destroy();
    stopPromptly(this.emulator);
    await stopped;
  }
}

/** v86's wasm: a path/URL v86 loads itself, or a compiled module (shared by the VMs of one page). */
export type V86Wasm = string | (() => Promise<WebAssembly.Module>);

/** Boots the guest and resolves once the shell prompt is up. */
export async function startVM(images: GuestImages, wasm: V86Wasm, opts: VMOptions = {}): Promise<VM> {
  const memoryMiB = opts.memoryMiB ?? 128;
  const cmdline = opts.cmdline ?? [images.cmdline, opts.cmdlineExtra].filter(Boolean).join(" ");
  const emulator = new V86({
    ...(typeof wasm === "string"
      ? { wasm_path: wasm }
      : { wasm_fn: async (env: WebAssembly.Imports) => (await WebAssembly.instantiate(await wasm(), env)).exports }),
    memory_size: memoryMiB << 20,
    vga_memory_size: 2 << 20,
    bios: { buffer: images.bios },
    vga_bios: { buffer: images.vgaBios },
    // A restored guest's kernel and initramfs are in the state's RAM: only a boot needs them.
    ...(opts.initialState ? {} : { bzimage: { buffer: images.kernel }, initrd: { buffer: images.initrd } }),
    cmdline,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    virtio_balloon: opts.builtinBalloon ?? false,
  } as ConstructorParameters<typeof V86>[0]);
  const vm = new VM(emulator, opts.onSerial);
  const bootTimeoutMs = opts.bootTimeoutMs ?? 60000;
  const { signal } = opts;
  let onAbort: (() => void) | null = null;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal!.reason ?? new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
  aborted.catch(() => {});
  const steps = async () => {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BootError(`v86 did not get ready within ${bootTimeoutMs} ms (images unreadable?)`)), bootTimeoutMs);
      emulator.add_listener("emulator-ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await opts.onReady?.(emulator, vm);
    // Restored after onReady, not through v86's initial_state: devices plugged in there (the balloon)
    // must exist to take their part of the state.
    if (opts.initialState) await emulator.restore_state(opts.initialState);
    if (opts.noPromptWait) {
      await emulator.run();
      return;
    }
    const prompt = vm.waitFor(PROMPT, bootTimeoutMs, "the shell prompt");
    await emulator.run();
    // A restored guest is already at its prompt; an empty line makes it print one.
    if (opts.initialState) vm.send("\n");
    await prompt;
  };
  const running = steps();
  running.catch(() => {}); // after an abort its rejection is not news
  try {
    await Promise.race([running, aborted]);
  } catch (e) {
    await vm.destroy();
    throw e;
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
  return vm;
}

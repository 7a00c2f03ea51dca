/**
 * `<v86-balloon-vm>`: a Linux guest with the balloon device, in a terminal, from plain HTML.
 *
 *   <v86-balloon-vm state="guest.state" lazy commands="free -m"></v86-balloon-vm>
 *   <v86-balloon-vm memory="128" features="stats,reporting" autostart compact></v86-balloon-vm>
 *
 * Attributes (read when the element is connected; the names are ELEMENT_ATTRIBUTES in src/vocabulary.ts):
 *   memory         guest RAM in MiB (default 128; with `state`, the state's)
 *   features       balloon features offered, comma-separated (default: DEFAULT_FEATURES in src/vocabulary.ts)
 *   state          URL of a saved state (`npx v86-balloon snapshot`): restored instead of booting
 *   floor          memory the balloon always leaves to the guest: auto (default), off, or a size in MiB
 *                  ("64" or "64M"); a target beyond it is held there. A bad value is shown in the element.
 *   autostart      boot at once; without it (and without `lazy`) the element shows a Boot button
 *   lazy           boot or restore when scrolled into view
 *   compact        terminal only (no status bar)
 *   theme          light, dark or auto (default: the reader's prefers-color-scheme)
 *   commands       typed into the shell once it is up; newlines separate lines
 *   images         directory with manifest.json, bios.bin, vgabios.bin, bzImage.bin, initramfs.cpio
 *   kernel, initrd URLs of single images (override those in `images`)
 *   cmdline-extra  appended to the kernel command line
 *   font-size      terminal font size in px
 * Styling: the `--v86b-*` custom properties (see mount.ts), e.g. `v86-balloon-vm { --v86b-bg: #000; height: 20em }`.
 * Events: "v86-ready" (detail: the MountedVM), "v86-error" (detail: the Error) — ELEMENT_EVENTS.
 * Removing the element stops its VM and frees its memory.
 */
import { ELEMENT_EVENTS, type ElementAttribute } from "../vocabulary.js";
import { mount, type MountedVM, type MountOptions } from "./mount.js";

export class V86BalloonVMElement extends HTMLElement {
  static readonly observedAttributes = [];
  private mounted: MountedVM | null = null;
  private readyPromise: Promise<MountedVM> | null = null;
  private resolveReady!: (m: MountedVM) => void;
  private rejectReady!: (e: Error) => void;

  constructor() {
    super();
    this.resetReady();
  }

  private resetReady(): void {
    this.readyPromise = new Promise<MountedVM>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {}); // observed through events too
  }

  /** Resolves once the guest's shell is up. */
  get ready(): Promise<MountedVM> {
    return this.readyPromise!;
  }

  get handle(): MountedVM | null {
    return this.mounted;
  }

  get vm() {
    return this.mounted?.vm ?? null;
  }

  get balloon() {
    return this.mounted?.balloon ?? null;
  }

  /** The terminal's text (for tests and scripts). */
  text(): string {
    return this.mounted?.text() ?? "";
  }

  /** Boots now (when the element was created without `autostart`). */
  boot(): Promise<MountedVM> {
    if (!this.mounted) throw new Error("v86-balloon-vm: not connected to a document");
    return this.mounted.boot();
  }

  options(): MountOptions {
    const attr = (n: ElementAttribute) => this.getAttribute(n) ?? undefined;
    const has = (n: ElementAttribute) => this.hasAttribute(n);
    const url = (n: ElementAttribute) => (attr(n) ? new URL(attr(n)!, document.baseURI).href : undefined);
    const num = (n: ElementAttribute) => (attr(n) ? Number(attr(n)) : undefined);
    const images: MountOptions["images"] = {};
    if (attr("images")) images.base = url("images");
    if (attr("kernel")) images.kernel = url("kernel");
    if (attr("initrd")) images.initrd = url("initrd");
    const theme = attr("theme");
    return {
      memory: num("memory"),
      features: attr("features"),
      state: url("state"),
      floor: attr("floor"),
      autostart: has("autostart") || has("lazy"),
      lazy: has("lazy"),
      compact: has("compact"),
      theme: theme === "light" || theme === "dark" ? theme : "auto",
      commands: attr("commands"),
      images,
      cmdlineExtra: attr("cmdline-extra"),
      fontSize: num("font-size"),
      onReady: (m) => {
        this.resolveReady(m);
        this.dispatchEvent(new CustomEvent(ELEMENT_EVENTS.ready, { detail: m }));
      },
      onError: (e) => {
        this.rejectReady(e);
        this.resetReady();
        this.dispatchEvent(new CustomEvent(ELEMENT_EVENTS.error, { detail: e }));
      },
    };
  }

  connectedCallback(): void {
    if (this.mounted) return;
    try {
      this.mounted = mount(this, this.options());
    } catch (e) {
      this.textContent = `v86-balloon-vm: ${(e as Error).message}`;
      this.rejectReady(e as Error);
    }
  }

  disconnectedCallback(): void {
    // Moving the element within the page re-connects it; only tear down when it stays out.
    queueMicrotask(() => {
      if (!this.isConnected && this.mounted) {
        void this.mounted.destroy();
        this.mounted = null;
        this.resetReady();
      }
    });
  }
}

/** Registers `<v86-balloon-vm>` (once). */
export function defineElement(name = "v86-balloon-vm"): void {
  if (!customElements.get(name)) customElements.define(name, V86BalloonVMElement);
}

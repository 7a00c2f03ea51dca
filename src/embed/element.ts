/**
 * `<v86-balloon-vm>`: a Linux guest with the balloon device, in a terminal, from plain HTML.
 *
 *   <v86-balloon-vm memory="128" features="stats,reporting" autostart compact
 *                   commands="uname -a; free"></v86-balloon-vm>
 *
 * Attributes (read when the element is connected):
 *   memory         guest RAM in MiB (default 128)
 *   features       balloon features offered, comma-separated (default: DEFAULT_FEATURES in src/vocabulary.ts)
 *   autostart      boot at once; without it the element shows a Boot button
 *   compact        terminal only (no status bar)
 *   commands       typed into the shell once it is up; newlines separate lines
 *   images         directory with manifest.json, bios.bin, vgabios.bin, bzImage, initramfs.cpio
 *   kernel, initrd URLs of single images (override those in `images`)
 *   cmdline-extra  appended to the kernel command line
 *   font-size      terminal font size in px
 * Events: "v86-ready" (detail: the MountedVM), "v86-error" (detail: the Error).
 */
import { ELEMENT_EVENTS } from "../vocabulary.js";
import { mount, type MountedVM, type MountOptions } from "./mount.js";
import { injectStyle } from "./terminal.js";

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
    const attr = (n: string) => this.getAttribute(n) ?? undefined;
    const images: MountOptions["images"] = {};
    if (attr("images")) images.base = new URL(attr("images")!, document.baseURI).href;
    if (attr("kernel")) images.kernel = new URL(attr("kernel")!, document.baseURI).href;
    if (attr("initrd")) images.initrd = new URL(attr("initrd")!, document.baseURI).href;
    return {
      memory: attr("memory") ? Number(attr("memory")) : undefined,
      features: attr("features"),
      autostart: this.hasAttribute("autostart"),
      compact: this.hasAttribute("compact"),
      commands: attr("commands"),
      images,
      cmdlineExtra: attr("cmdline-extra"),
      fontSize: attr("font-size") ? Number(attr("font-size")) : undefined,
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
    injectStyle(
      "v86-balloon-vm-host-css",
      "v86-balloon-vm{display:block;height:360px}v86-balloon-vm>.v86b{height:100%;box-sizing:border-box}",
    );
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

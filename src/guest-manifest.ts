/** The shape of `public/guest/manifest.json`, written by `guest/build.sh`. */
export interface GuestManifest {
  kernel_version?: string;
  cmdline: string;
  outputs: Record<string, { sha256: string; size: number }>;
  [key: string]: unknown;
}

/** The images a VM needs, by role, as named in the manifest. */
export const IMAGE_FILES = {
  bios: "bios.bin",
  vgaBios: "vgabios.bin",
  // An extension: Vite's dev server takes an extensionless URL for a JS module and answers HTTP 500.
  kernel: "bzImage.bin",
  initrd: "initramfs.cpio",
} as const;

export const REBUILD_HINT = "rebuild them with `npm run build:guest` (needs Debian packages, ~10 min)";

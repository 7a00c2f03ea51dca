/**
 * What the harness reads out of a user's kernel before booting it: the release string (bzImage header),
 * the kernel config (IKCONFIG inside the compressed payload, or a file) and what that config means for
 * the balloon (the pre-flight check).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

/** The release ("6.12.57-686") from the bzImage's `kernel_version` header field, or null. */
export function kernelRelease(image: Buffer): string | null {
  if (image.length < 0x260 || image.toString("latin1", 0x202, 0x206) !== "HdrS") return null;
  const ptr = image.readUInt16LE(0x20e);
  if (!ptr) return null;
  const at = ptr + 0x200;
  const end = image.indexOf(0, at);
  const text = image.toString("latin1", at, end > at ? end : at);
  return text.split(" ")[0] || null;
}

/** Decompressors for the kernel payload by magic; gzip in-process, the rest by the usual tools. */
const PAYLOAD_FORMATS: { magic: number[]; tool?: string[]; name: string }[] = [
  { magic: [0x1f, 0x8b], name: "gzip" },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a], tool: ["xz", "-dcq"], name: "xz" },
  { magic: [0x02, 0x21, 0x4c, 0x18], name: "lz4" },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], tool: ["zstd", "-dcq"], name: "zstd" },
  { magic: [0x42, 0x5a, 0x68], tool: ["bzip2", "-dcq"], name: "bzip2" },
  { magic: [0x5d, 0x00, 0x00], tool: ["unlzma", "-c"], name: "lzma" },
];

/** Decompresses with an external tool; trailing bytes (the kernel's appended size) make some complain, so the output counts, not the status. */
export function decompressWith(tool: string[], data: Buffer): Buffer {
  const r = spawnSync(tool[0], tool.slice(1), { input: data, maxBuffer: 512 << 20 });
  if (r.error) throw new Error(`\`${tool[0]}\` is needed to decompress this (${(r.error as Error).message}); install it (Debian: apt-get install ${tool[0] === "unlzma" ? "xz-utils" : tool[0] === "lz4" ? "lz4" : tool[0]})`);
  if (!r.stdout?.length) throw new Error(`\`${tool.join(" ")}\` failed: ${String(r.stderr).trim()}`);
  return r.stdout;
}

function gunzipLenient(data: Buffer): Buffer {
  // The payload ends with the decompressed size: zlib stops at the end of the stream and complains.
  return gunzipSync(data, { finishFlush: 2 /* Z_SYNC_FLUSH */ });
}

/** The uncompressed vmlinux inside a bzImage, or null if the image is not one. */
export function vmlinuxOf(image: Buffer): Buffer | null {
  if (image.length < 0x260 || image.toString("latin1", 0x202, 0x206) !== "HdrS") return null;
  if (image.readUInt16LE(0x206) < 0x208) return null; // payload fields came with boot protocol 2.08
  const setupSects = image[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  const payload = image.subarray(start, start + image.readUInt32LE(0x24c));
  const fmt = PAYLOAD_FORMATS.find((f) => f.magic.every((b, i) => payload[i] === b));
  if (!fmt) return null;
  if (fmt.name === "lz4") return lz4Legacy(payload);
  return fmt.tool ? decompressWith(fmt.tool, payload) : gunzipLenient(payload);
}

/**
 * The kernel's LZ4 "legacy" frame (magic 0x184C2102, then blocks of le32 size + LZ4 block), decoded here
 * because the project's own kernels are LZ4 and the lz4 tool is rarely installed. Stops at the first
 * size that does not fit (the kernel appends the uncompressed size after the last block).
 */
export function lz4Legacy(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let p = 4;
  while (p + 4 <= data.length) {
    const size = data.readUInt32LE(p);
    if (size === 0x184c2102) {
      p += 4;
      continue;
    }
    if (size === 0 || p + 4 + size > data.length) break;
    out.push(lz4Block(data.subarray(p + 4, p + 4 + size)));
    p += 4 + size;
  }
  return Buffer.concat(out);
}

function lz4Block(src: Buffer): Buffer {
  let dst = Buffer.alloc(Math.max(1 << 16, src.length * 4));
  let o = 0;
  const room = (n: number) => {
    if (o + n <= dst.length) return;
    const bigger = Buffer.alloc(Math.max(dst.length * 2, o + n));
    dst.copy(bigger, 0, 0, o);
    dst = bigger;
  };
  let i = 0;
  while (i < src.length) {
    const token = src[i++];
    let lit = token >> 4;
    if (lit === 15) for (let b = 255; b === 255 && i < src.length; ) lit += b = src[i++];
    room(lit);
    src.copy(dst, o, i, i + lit);
    o += lit;
    i += lit;
    if (i >= src.length) break; // the last sequence has literals only
    const offset = src[i] | (src[i + 1] << 8);
    i += 2;
    if (offset === 0 || offset > o) throw new Error("lz4: corrupt block (bad match offset)");
    let len = (token & 15) + 4;
    if ((token & 15) === 15) for (let b = 255; b === 255 && i < src.length; ) len += b = src[i++];
    room(len);
    for (let k = 0; k < len; k++, o++) dst[o] = dst[o - offset];
  }
  return dst.subarray(0, o);
}

/** The embedded config (CONFIG_IKCONFIG) of a bzImage, or null. */
export function embeddedConfig(image: Buffer): string | null {
  const vmlinux = vmlinuxOf(image);
  if (!vmlinux) return null;
  const st = vmlinux.indexOf("IKCFG_ST");
  if (st < 0) return null;
  const ed = vmlinux.indexOf("IKCFG_ED", st);
  return gunzipLenient(vmlinux.subarray(st + 8, ed > 0 ? ed : undefined)).toString("utf8");
}

export type KernelConfig = Map<string, string>;

/** `CONFIG_X=y|m|value` lines; "is not set" lines and absent symbols both read as unset. */
export function parseKernelConfig(text: string): KernelConfig {
  const out: KernelConfig = new Map();
  for (const line of text.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

export function readConfigFile(path: string): KernelConfig {
  return parseKernelConfig(readFileSync(path, "utf8"));
}

export interface PreflightInput {
  config: KernelConfig;
  /** Where the config came from, for the messages. */
  source: string;
  /** The --modules argument, and the module names it provides (null: none given). */
  modules: { arg: string; names: Set<string> } | null;
}

export interface PreflightResult {
  /** Stops the run: the balloon cannot work with this kernel. */
  errors: string[];
  /** Printed, the run goes on (some tests will skip). */
  notes: string[];
}

/** Symbols the balloon needs, the module that provides each when =m, and what is lost without it. */
const NEEDED: { sym: string; module?: string; what: string }[] = [
  { sym: "CONFIG_PCI", what: "PCI (the balloon is a virtio-pci device)" },
  { sym: "CONFIG_VIRTIO", module: "virtio", what: "the virtio core" },
  { sym: "CONFIG_VIRTIO_PCI", module: "virtio_pci", what: "the virtio-pci transport" },
  { sym: "CONFIG_VIRTIO_BALLOON", module: "virtio_balloon", what: "the virtio-balloon driver" },
  { sym: "CONFIG_BLK_DEV_INITRD", what: "initramfs support (the tests run from the initramfs)" },
  { sym: "CONFIG_SERIAL_8250_CONSOLE", what: "a console on ttyS0 (the harness talks to the guest there)" },
];
const OPTIONAL: { sym: string; what: string }[] = [
  { sym: "CONFIG_PAGE_REPORTING", what: "free page reporting: tests that require `reporting` will be skipped" },
  { sym: "CONFIG_BALLOON_COMPACTION", what: "balloon compaction: inflated pages cannot migrate" },
  { sym: "CONFIG_DEBUG_FS", what: "debugfs: /sys/kernel/debug/virtio-balloon is not there" },
];

/** The pre-flight verdict on a kernel config (see README "Bring your own kernel"). */
export function preflight(p: PreflightInput): PreflightResult {
  const errors: string[] = [];
  const notes: string[] = [];
  const c = p.config;
  if (c.get("CONFIG_64BIT") === "y") errors.push(`${p.source}: CONFIG_64BIT=y: v86 emulates a 32-bit x86 CPU; build an i386 kernel (ARCH=i386)`);
  for (const n of NEEDED) {
    const v = c.get(n.sym);
    if (v === "y") continue;
    if (v === "m" && n.module) {
      if (!p.modules) errors.push(`${n.sym}=m and no --modules given: pass --modules DIR (or the kernel's .deb) with ${n.module}.ko, ${n.what}`);
      else if (!p.modules.names.has(n.module)) errors.push(`${n.sym}=m but --modules ${p.modules.arg} has no ${n.module}.ko (${n.what})`);
      else if (c.get("CONFIG_MODULES") !== "y") errors.push(`${n.sym}=m but CONFIG_MODULES is not set`);
      continue;
    }
    errors.push(`${n.sym} is not set in ${p.source}: the kernel lacks ${n.what}; rebuild with ${n.sym}=y${n.module ? " (or =m and pass --modules)" : ""}`);
  }
  if (p.modules && c.get("CONFIG_MODULES") !== "y") errors.push(`--modules given but CONFIG_MODULES is not set in ${p.source}: this kernel cannot load modules`);
  for (const o of OPTIONAL) if (c.get(o.sym) !== "y") notes.push(`${o.sym} is not set: no ${o.what}`);
  return { errors, notes };
}

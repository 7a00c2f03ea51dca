/**
 * `--modules DIR|FILE.deb`: the kernel modules a user's kernel needs for the balloon (virtio, virtio_ring,
 * virtio_pci, virtio_balloon, ...), read from a directory (any depth: a build tree, INSTALL_MOD_PATH,
 * /lib/modules/RELEASE) or a linux-image .deb, decompressed on the host (.ko.xz/.ko.zst/.ko.gz: the guest's
 * busybox insmod takes plain ELF), ordered by each module's `.modinfo` `depends=`, and packed as a newc cpio
 * that is appended to the initramfs (the kernel unpacks concatenated archives) together with a loader
 * script, `/lib/modules/v86-balloon/load.sh`, that the harness (or the project's /init) runs.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { decompressWith } from "./kernel-image.js";

export interface KernelModule {
  /** The module's own name (`.modinfo` name=, underscores), as /proc/modules lists it. */
  name: string;
  file: string;
  depends: string[];
  vermagic: string | null;
  /** Uncompressed ELF. */
  data: Buffer;
}

export interface ModuleSet {
  /** In load order. */
  modules: KernelModule[];
  /** The text of a .deb's `boot/config-*`, when there was one. */
  config: string | null;
}

/** Directory in the guest that holds the modules and the loader. */
export const GUEST_MODULE_DIR = "/lib/modules/v86-balloon";
/** At most this many modules are all loaded; from a bigger tree only what the balloon needs. */
const LOAD_ALL_MAX = 32;
const WANTED = ["virtio_pci", "virtio_balloon"];

const MODULE_FILE = /\.ko(\.(xz|zst|gz))?$/;

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (MODULE_FILE.test(e.name)) out.push(p);
  }
  return out;
}

function decompressModule(file: string, raw: Buffer): Buffer {
  if (file.endsWith(".gz")) return gunzipSync(raw);
  if (file.endsWith(".xz")) return decompressWith(["xz", "-dcq"], raw);
  if (file.endsWith(".zst")) return decompressWith(["zstd", "-dcq"], raw);
  return raw;
}

/** The `.modinfo` section of an ELF module as key=value strings. */
export function modinfo(elf: Buffer, file = "module"): Map<string, string[]> {
  if (elf.length < 52 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF kernel module`);
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const addr = (o: number) => (is64 ? Number(le ? elf.readBigUInt64LE(o) : elf.readBigUInt64BE(o)) : u32(o));
  const shoff = addr(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const shstrndx = u16(is64 ? 0x3e : 0x32);
  const section = (i: number) => {
    const b = shoff + i * shentsize;
    return { name: u32(b), offset: addr(b + (is64 ? 0x18 : 0x10)), size: addr(b + (is64 ? 0x20 : 0x14)) };
  };
  const strtab = section(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameAt = strtab.offset + s.name;
    if (elf.toString("latin1", nameAt, elf.indexOf(0, nameAt)) !== ".modinfo") continue;
    for (const kv of elf.toString("latin1", s.offset, s.offset + s.size).split("\0")) {
      const eq = kv.indexOf("=");
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      out.set(k, [...(out.get(k) ?? []), kv.slice(eq + 1)]);
    }
    return out;
  }
  throw new Error(`${file}: no .modinfo section (not a kernel module?)`);
}

function extractDeb(deb: string): string {
  const dir = mkdtempSync(join(tmpdir(), "v86-balloon-deb-"));
  const r = spawnSync("dpkg-deb", ["-x", deb, dir]);
  if (r.error) throw new Error(`--modules ${deb}: reading a .deb needs dpkg-deb (apt-get install dpkg), or unpack it yourself and pass the directory`);
  if (r.status !== 0) throw new Error(`--modules ${deb}: dpkg-deb -x failed: ${String(r.stderr).trim()}`);
  return dir;
}

/** Reads, decompresses and orders the modules of `--modules`. Throws naming the missing piece. */
export function readModules(arg: string): ModuleSet {
  let st;
  try {
    st = statSync(arg);
  } catch {
    throw new Error(`--modules ${arg}: no such file or directory`);
  }
  if (st.isDirectory()) return readModuleDir(arg, arg, null);
  if (!arg.endsWith(".deb")) throw new Error(`--modules ${arg}: expected a directory of .ko files or a linux-image .deb`);
  const dir = extractDeb(arg);
  try {
    const boot = join(dir, "boot");
    const cfg = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith("config-")) : undefined;
    return readModuleDir(dir, arg, cfg ? readFileSync(join(boot, cfg), "utf8") : null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readModuleDir(dir: string, arg: string, config: string | null): ModuleSet {
  const files = walk(dir).sort();
  if (!files.length) throw new Error(`--modules ${arg}: no .ko / .ko.xz / .ko.zst / .ko.gz files in it`);
  const byName = new Map<string, KernelModule>();
  for (const file of files) {
    const data = decompressModule(file, readFileSync(file));
    const info = modinfo(data, file);
    const name = info.get("name")?.[0] ?? basename(file).replace(MODULE_FILE, "").replace(/-/g, "_");
    const depends = (info.get("depends")?.[0] ?? "").split(",").filter(Boolean).map((d) => d.replace(/-/g, "_"));
    if (!byName.has(name)) byName.set(name, { name, file, depends, vermagic: info.get("vermagic")?.[0] ?? null, data });
  }
  const roots = byName.size <= LOAD_ALL_MAX ? [...byName.keys()] : WANTED.filter((w) => byName.has(w));
  return { modules: loadOrder(byName, roots, arg), config };
}

/** Dependencies first (depth-first post-order from each root, roots in name order). */
export function loadOrder(byName: Map<string, KernelModule>, roots: string[], arg = "--modules"): KernelModule[] {
  const out: KernelModule[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, from: string | null) => {
    const s = state.get(name);
    if (s === "done") return;
    if (s === "visiting") throw new Error(`${arg}: module dependency loop through ${name}`);
    const m = byName.get(name);
    if (!m) throw new Error(`${arg}: ${from} depends on ${name}, which is not among the modules (add ${name}.ko)`);
    state.set(name, "visiting");
    for (const d of m.depends) visit(d, name);
    state.set(name, "done");
    out.push(m);
  };
  for (const r of [...roots].sort()) visit(r, null);
  return out;
}

/** The loader script: each module once, in order, skipping those already loaded (idempotent). */
export function loaderScript(mods: KernelModule[]): string {
  return [
    "#!/bin/sh",
    "# Written by v86-balloon --modules: loads these modules in dependency order (from .modinfo depends=).",
    "command -v insmod >/dev/null 2>&1 && INSMOD=insmod || INSMOD='busybox insmod'",
    `cd ${GUEST_MODULE_DIR} || exit 1`,
    "failed=0",
    `for m in ${mods.map((m) => m.name).join(" ")}; do`,
    '  grep -q "^$m " /proc/modules 2>/dev/null && continue',
    '  $INSMOD ./$m.ko 2>&1 || { echo "v86-balloon: insmod $m.ko failed"; failed=$((failed + 1)); }',
    "done",
    "# every module is tried: what a failure costs is judged by whether the balloon driver is bound",
    'exit "$failed"',
    "",
  ].join("\n");
}

// ------------------------------------------------------------------------------------- newc cpio

interface CpioEntry {
  path: string;
  mode: number;
  data?: Buffer;
}

/** An uncompressed newc cpio (what the kernel's initramfs unpacker reads), ending with TRAILER!!!. */
export function cpio(entries: CpioEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (path: string, mode: number, data: Buffer) => {
    const name = Buffer.from(path + "\0", "latin1");
    const fields = [ino++, mode, 0, 0, mode & 0o040000 ? 2 : 1, mtime, data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from("070701" + fields.map((f) => f.toString(16).padStart(8, "0")).join(""), "latin1");
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  for (const e of entries) add(e.path.replace(/^\//, ""), e.mode, e.data ?? Buffer.alloc(0));
  add("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** The module cpio: directories, the modules as NAME.ko, the loader. */
export function moduleCpio(mods: KernelModule[]): Buffer {
  const dirs = ["lib", "lib/modules", GUEST_MODULE_DIR.slice(1)];
  return cpio([
    ...dirs.map((d) => ({ path: d, mode: 0o040755 })),
    ...mods.map((m) => ({ path: `${GUEST_MODULE_DIR}/${m.name}.ko`, mode: 0o100644, data: m.data })),
    { path: `${GUEST_MODULE_DIR}/load.sh`, mode: 0o100755, data: Buffer.from(loaderScript(mods)) },
  ]);
}

/** `base` + zero padding to 4 bytes + the module cpio: one initramfs for the kernel. */
export function appendModules(base: Buffer, mods: KernelModule[]): Buffer {
  return Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), moduleCpio(mods)]);
}

/** Test discovery on the host: files, directories and globs (`*`, `?`, `**`) → script paths. */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's own guest suite. */
export const SUITE_DIR = fileURLToPath(new URL("../../guest/initramfs/tests/", import.meta.url));
export const LIB_SCRIPT = SUITE_DIR + "lib.sh";

/** A script is a test unless it is a library (`lib*.sh`) or private (`_*.sh`). */
export function isTestScript(name: string): boolean {
  const base = name.split(/[\\/]/).pop() ?? name;
  return base.endsWith(".sh") && !base.startsWith("lib") && !base.startsWith("_");
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += "(?:.*/)?";
        i++;
        if (glob[i + 1] === "/") i++;
        else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/**
 * Expands the arguments to absolute script paths (sorted, unique). `guest:/path` entries are kept as they
 * are (scripts inside the image). No arguments = the project's suite.
 */
export function expandTestArgs(args: string[], cwd = process.cwd()): string[] {
  if (!args.length) args = [SUITE_DIR];
  const out = new Set<string>();
  for (const a of args) {
    if (a.startsWith("guest:")) {
      out.add(a);
      continue;
    }
    if (/[*?]/.test(a)) {
      const abs = resolve(cwd, a).split(sep).join("/");
      const firstGlob = abs.search(/[*?]/);
      const root = abs.slice(0, abs.lastIndexOf("/", firstGlob) + 1) || "/";
      const re = globToRegExp(abs.slice(root.length));
      if (!existsSync(root)) throw new Error(`no such directory for ${a}: ${root}`);
      const hits = walk(root).filter((p) => re.test(relative(root, p).split(sep).join("/")));
      if (!hits.length) throw new Error(`no test scripts match ${a}`);
      for (const h of hits) out.add(h);
      continue;
    }
    const abs = resolve(cwd, a);
    if (!existsSync(abs)) throw new Error(`no such test file or directory: ${a}`);
    if (statSync(abs).isDirectory()) {
      const hits = walk(abs).filter(isTestScript);
      if (!hits.length) throw new Error(`no test scripts (*.sh, not lib*.sh) in ${a}`);
      for (const h of hits) out.add(h);
    } else out.add(abs);
  }
  return [...out].sort();
}

/**
 * A small static HTTP server on 127.0.0.1: the installed package's `--browser` harness page and guest
 * images (src/harness/browser-runner.ts), and the built pages of the browser tests and benches.
 */
import { readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { basename, extname, join, normalize, resolve, sep } from "node:path";

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

export interface StaticServer {
  url: string;
  /** Serves one more local file or directory (any path, e.g. a user's kernel) and returns its URL path. */
  file(path: string): string;
  close(): Promise<void>;
}

/** `path` under `root`, or null when it would leave it. */
function inside(root: string, path: string): string | null {
  const file = normalize(join(root, path));
  return file === resolve(root) || file.startsWith(resolve(root) + sep) ? file : null;
}

/** Serves `roots` (first match wins) on 127.0.0.1 at a free port. */
export async function serveStatic(...roots: string[]): Promise<StaticServer> {
  /** URL prefix -> a local directory, or a file (served under its own name only), added by file(). */
  const mounts = new Map<string, { path: string; dir: boolean }>();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const mount = [...mounts].find(([prefix]) => path.startsWith(prefix));
    const rest = mount && path.slice(mount[0].length);
    const candidates = mount
      ? [mount[1].dir ? inside(mount[1].path, rest!) : rest === basename(mount[1].path) ? mount[1].path : null]
      : roots.map((root) => inside(root, path));
    for (let file of candidates) {
      if (!file) continue;
      try {
        if (statSync(file).isDirectory()) file = join(file, "index.html");
        const body = readFileSync(file);
        res.writeHead(200, {
          "content-type": MIME[extname(file)] ?? "application/octet-stream",
          "content-length": body.length,
          "cache-control": "no-store",
        });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      } catch {
        /* next root */
      }
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(`not found: ${path}`);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("static server has no port");
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    file(path) {
      const abs = resolve(path);
      const dir = statSync(abs, { throwIfNoEntry: false })?.isDirectory() ?? false;
      let prefix = [...mounts].find(([, m]) => m.path === abs)?.[0];
      if (!prefix) {
        prefix = `/@file/${mounts.size}/`;
        mounts.set(prefix, { path: abs, dir });
      }
      return dir ? prefix : prefix + encodeURIComponent(basename(abs));
    },
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

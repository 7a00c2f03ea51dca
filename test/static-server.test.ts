/** The CLI's static server (`--browser` from the installed package): roots, one-off local files and directories, no escape. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveStatic, type StaticServer } from "../src/node/static-server.js";

describe("serveStatic", () => {
  let dir: string;
  let server: StaticServer;
  const get = async (path: string) => {
    const r = await fetch(new URL(path, server.url));
    return { status: r.status, type: r.headers.get("content-type"), body: await r.text() };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "v86-balloon-static-"));
    mkdirSync(join(dir, "root/sub"), { recursive: true });
    mkdirSync(join(dir, "images"));
    writeFileSync(join(dir, "root/page.html"), "<p>page</p>");
    writeFileSync(join(dir, "root/sub/index.html"), "index");
    writeFileSync(join(dir, "secret.txt"), "secret");
    writeFileSync(join(dir, "my-kernel"), "kernel");
    writeFileSync(join(dir, "images/manifest.json"), "{}");
    server = await serveStatic(join(dir, "root"));
  });

  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves its root with content types, and directories by their index.html", async () => {
    expect(await get("page.html")).toEqual({ status: 200, type: "text/html; charset=utf-8", body: "<p>page</p>" });
    expect((await get("sub/")).body).toBe("index");
    expect((await get("nothing.js")).status).toBe(404);
  });

  it("serves a local file or directory added by path, and nothing else outside its root", async () => {
    const kernel = server.file(join(dir, "my-kernel"));
    expect(kernel).toMatch(/\/my-kernel$/);
    expect((await get(kernel)).body).toBe("kernel");
    expect(server.file(join(dir, "my-kernel"))).toBe(kernel); // once
    const images = server.file(join(dir, "images"));
    expect(images.endsWith("/")).toBe(true);
    expect((await get(`${images}manifest.json`)).body).toBe("{}");
    // A file added by path is served alone, not its directory (secret.txt lies beside my-kernel).
    expect((await get(`${kernel.replace(/my-kernel$/, "")}secret.txt`)).status).toBe(404);
    expect((await get("../secret.txt")).status).toBe(404);
    expect((await get("%2e%2e/secret.txt")).status).toBe(404);
    expect((await get(`${images}..%2fsecret.txt`)).status).toBe(404);
  });
});

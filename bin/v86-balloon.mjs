#!/usr/bin/env node
// v86-balloon CLI: `v86-balloon test ...`, `v86-balloon snapshot ...` (see src/harness/cli.ts). The
// installed package runs the compiled lib/; a checkout of the repository runs the TypeScript sources
// through tsx, so no build step is needed there.
import { existsSync } from "node:fs";

const source = new URL("../src/harness/cli.ts", import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(source.href);
} else {
  cli = await import("../lib/harness/cli.js");
}
process.exitCode = await cli.main(process.argv.slice(2));

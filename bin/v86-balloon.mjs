#!/usr/bin/env node
// v86-balloon CLI: `v86-balloon test [files] [options]` (see src/harness/cli.ts). Runs the TypeScript
// sources through tsx's ESM loader, so no build step is needed.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/harness/cli.ts");
process.exitCode = await main(process.argv.slice(2));

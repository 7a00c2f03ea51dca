// The project's own guest suite (guest/initramfs/tests/*.sh) through the harness API, in Node: real Linux
// guests driving our balloon. One vitest case per script, so a failure names the script and shows its
// failures, serial log and (in $HARNESS_TRACE_DIR, default $TMPDIR/v86-balloon-traces) its transaction trace.
import { beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTests, type RunResult } from "../src/harness/runner.js";
import { expandTestArgs } from "../src/harness/files.js";
import { GUEST_DIR } from "../src/node/vm-node.js";

const haveGuest = existsSync(GUEST_DIR + "bzImage.bin");
const scripts = expandTestArgs([]);

describe.skipIf(!haveGuest)("guest suite (Node, real Linux guest)", () => {
  let run: RunResult;
  beforeAll(async () => {
    run = await runTests({
      workers: Number(process.env.HARNESS_WORKERS ?? 2),
      traceDir: process.env.HARNESS_TRACE_DIR ?? join(tmpdir(), "v86-balloon-traces"),
      junit: process.env.HARNESS_JUNIT,
      progress: !!process.env.HARNESS_PROGRESS,
    });
  }, 600_000);

  for (const path of scripts) {
    const id = path.slice(path.indexOf("guest/initramfs/tests/"));
    it(id, () => {
      const c = run.cases.find((x) => x.id === id);
      expect(c, `no result for ${id}`).toBeDefined();
      if (!c!.ok) {
        const detail = [...c!.failures, c!.traceFile ? `trace: ${c!.traceFile}` : "", "serial:", c!.serial ?? ""].join("\n");
        expect.fail(`${c!.name}\n${detail}`);
      }
    });
  }
});

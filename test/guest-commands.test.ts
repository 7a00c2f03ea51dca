/**
 * Everyday commands in the committed guest: each works, or is absent from the image ("not found"),
 * never "Function not implemented" (a system call the tiny kernel config left out; busybox-static:i386
 * uses the 32-bit time_t calls, e.g. touch -> utimensat_time32 -> CONFIG_COMPAT_32BIT_TIME).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeBalloonVM, type BalloonVM } from "../src/node/balloon-vm-node.js";

const COMMANDS: [string, string, RegExp][] = [
  ["touch", "touch /tmp/t1 && ls /tmp/t1", /\/tmp\/t1/],
  ["touch -d (set a time)", "touch -d '2024-01-02 03:04' /tmp/t1 && ls -l /tmp/t1", /Jan\s+2\s+2024|Jan\s+2\s+03:04/],
  ["mkdir", "mkdir -p /tmp/d/e && ls -d /tmp/d/e", /\/tmp\/d\/e/],
  ["cp", "echo payload > /tmp/src && cp /tmp/src /tmp/d/copy && cat /tmp/d/copy", /payload/],
  ["mv", "mv /tmp/d/copy /tmp/d/moved && cat /tmp/d/moved", /payload/],
  ["rm", "rm /tmp/d/moved && ls /tmp/d", /^e\s*$/],
  ["ls -l", "ls -l /tmp/src", /-rw-r--r--\s+1 0\s+0\s+8 .* \/tmp\/src/],
  ["date", "date -u +%Y", /^20\d\d\s*$/],
  ["dmesg", "dmesg | head -n 1", /Linux version/],
  ["top -n1", "top -n1 -b | head -n 2", /Mem: .*used/],
  ["sleep", "sleep 0.1 && echo slept", /slept/],
  ["stty size", "stty rows 30 cols 90 && stty size", /30 90/],
];

describe("everyday commands in the guest", () => {
  let b: BalloonVM;
  beforeAll(async () => {
    b = await startNodeBalloonVM({ memoryMiB: 96 });
  });
  afterAll(async () => b?.vm.destroy());

  for (const [name, cmd, want] of COMMANDS) {
    it(`${name} works (or is absent), never ENOSYS`, async () => {
      const out = await b.vm.run(`${cmd} 2>&1`, { allowFailure: true });
      expect(out).not.toMatch(/Function not implemented/);
      if (/: not found/.test(out)) return; // absent from the image: fine
      expect(out).toMatch(want);
    });
  }

  it("vi opens a file and quits", async () => {
    await b.vm.run("echo hello from vi > /tmp/vi-test");
    // vi reads from the terminal: type :q once its screen shows the file, then the shell is back.
    b.vm.send("vi /tmp/vi-test\n");
    await b.vm.waitFor(/hello from vi[\s\S]*~/, 20_000, "vi's screen with the file");
    b.vm.send(":q\r");
    const out = await b.vm.run("echo back-$((1 + 1))", { timeoutMs: 20_000 });
    expect(out).toMatch(/back-2/);
  });
});

/** The demo's console stream on its own: trouble lines, collapsed repeats, the hidden `stty`. */
import { describe, expect, it, vi } from "vitest";
import { ConsoleStream, lineKey, troubleOf, type Trouble } from "../src/demo/console.js";

function stream() {
  const shown: string[] = [];
  const sent: string[] = [];
  const troubles: Trouble[] = [];
  const s = new ConsoleStream({ out: (t) => shown.push(t), send: (t) => sent.push(t), onTrouble: (t) => troubles.push(t) });
  return { s, shown: () => shown.join(""), sent, troubles };
}

describe("demo console stream", () => {
  it("names a kernel panic, an OOM kill and Out of puff from the kernel's words on", () => {
    expect(troubleOf("~ # [   42.000000] Kernel panic - not syncing: System is deadlocked on memory\r\n")).toEqual({
      kind: "panic",
      line: "Kernel panic - not syncing: System is deadlocked on memory",
    });
    expect(troubleOf("[  9.1] Out of memory: Killed process 42 (memtouch) total-vm:1kB")?.kind).toBe("oom");
    expect(troubleOf("[  9.1] virtio_balloon virtio0: Out of puff! Can't get 1 pages")?.kind).toBe("out-of-puff");
    expect(troubleOf("Out of office")).toBeNull();
    expect(lineKey("[   12.345678] \x1b[1mtext\x1b[0m\r")).toBe("text");
  });

  it("collapses identical lines (timestamps aside) into one and a count before the next line", () => {
    const { s, shown, troubles } = stream();
    for (let i = 0; i < 40; i++) s.write(`[ ${i}.000000] virtio_balloon virtio0: Out of puff! Can't get 1 pages\r\n`);
    s.write("next\r\n");
    expect(shown().match(/Out of puff/g)).toHaveLength(1);
    expect(shown()).toMatch(/Out of puff! Can't get 1 pages\r\n\x1b\[2m {2}\.\.\. the line above repeated 39 more times\x1b\[0m\r\nnext\r\n/);
    expect(s.collapsed).toBe(39);
    expect(troubles).toHaveLength(40);
  });

  it("bare prompts and empty lines are never collapsed", () => {
    const { s, shown } = stream();
    s.write("~ # \r\n~ # \r\n\r\n\r\n~ # ");
    expect(shown()).toBe("~ # \r\n~ # \r\n\r\n\r\n~ # ");
  });

  it("tells an idle shell the terminal size with its echo hidden; shows it all when something else comes back", () => {
    vi.useFakeTimers();
    try {
      const { s, shown, sent } = stream();
      s.write("~ # ");
      s.resize(30, 41);
      expect(sent).toEqual([]); // not connected yet
      s.connect();
      expect(sent).toEqual(["stty rows 30 cols 41\n"]);
      s.write("stty rows 30 cols 41\r\n~ # ");
      expect(s.guestSize).toEqual([30, 41]);
      expect(shown()).toBe("~ # ");
      // Busy (the user typed): the next size waits for the prompt.
      s.typed();
      s.resize(20, 80);
      expect(sent).toHaveLength(1);
      s.write("ls\r\nbin\r\n~ # ");
      expect(sent[1]).toBe("stty rows 20 cols 80\n");
      s.write("stty rows 20 cols 80\r\nstty: bad\r\n~ # ");
      expect(shown()).toContain("stty: bad");
      expect(s.guestSize).toEqual([30, 41]);
    } finally {
      vi.useRealTimers();
    }
  });
});

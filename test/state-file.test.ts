/** The state file format (src/state-file.ts): round trip, and every way a file can be wrong, by name. */
import { describe, expect, it } from "vitest";
import { snapshotMain } from "../src/node/snapshot-cli.js";
import { checkStateMatches, decodeStateFile, encodeStateFile, gzip, stateHeader, StateFileError } from "../src/state-file.js";

const sha = (c: string) => c.repeat(64);
const header = stateHeader({ memoryMiB: 128, features: ["stats", "hinting"], imageSha256: { bzImage: sha("a"), "initramfs.cpio": sha("b") }, rawBytes: 4 });
const v86 = new Uint8Array([1, 2, 3, 4]).buffer;

describe("state files", () => {
  it("round-trips header and v86 state through gzip", async () => {
    const file = await encodeStateFile(header, v86);
    expect([file[0], file[1]]).toEqual([0x1f, 0x8b]);
    const back = await decodeStateFile(file);
    expect(back.header.memoryMiB).toBe(128);
    expect(back.header.features).toEqual(["stats", "hinting"]);
    expect([...new Uint8Array(back.v86State)]).toEqual([1, 2, 3, 4]);
  });

  it("refuses a truncated file, a foreign file, a bad header and a wrong size, each by name", async () => {
    const file = await encodeStateFile(header, v86);
    await expect(decodeStateFile(file.subarray(0, file.length - 8))).rejects.toThrow(/not valid gzip \(truncated\?\)/);
    await expect(decodeStateFile(await gzip(new TextEncoder().encode("hello world, not a state")))).rejects.toThrow(/not a v86-balloon state file/);
    await expect(decodeStateFile(await encodeStateFile({ ...header, memoryMiB: 4096 }, v86))).rejects.toThrow(/header: memoryMiB 4096/);
    await expect(decodeStateFile(await encodeStateFile({ ...header, features: ["warp"] as never }, v86))).rejects.toThrow(/unknown feature "warp"/);
    await expect(decodeStateFile(await encodeStateFile({ ...header, rawBytes: 99 }, v86))).rejects.toThrow(/truncated: 4 bytes of v86 state, the header says 99/);
    await expect(decodeStateFile(file)).resolves.toBeTruthy();
  });

  it("names the mismatch between a state and the VM asked for; aliases are not mismatches", () => {
    const err = (want: Parameters<typeof checkStateMatches>[1]) => {
      try {
        checkStateMatches(header, want);
        return null;
      } catch (e) {
        expect(e).toBeInstanceOf(StateFileError);
        return e as StateFileError;
      }
    };
    expect(err({ memoryMiB: 96 })?.mismatch).toBe("memory");
    expect(err({ memoryMiB: 96 })?.message).toMatch(/saved with 128 MiB of guest RAM, this VM asks for 96 MiB/);
    expect(err({ features: ["stats"] })?.message).toMatch(/balloon features "hinting,stats", this VM offers "stats"/);
    expect(err({ imageSha256: { bzImage: sha("c") } })?.message).toMatch(/other guest images: bzImage differs/);
    expect(err({ memoryMiB: 128, features: ["hinting", "stats"], imageSha256: { bzImage: sha("a") } })).toBeNull();
  });

  it("snapshot CLI: a missing --out or a bad flag is a usage error, before any boot", async () => {
    const errors: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => (errors.push(s), true)) as typeof process.stderr.write;
    try {
      expect(await snapshotMain(["--memory", "128"])).toBe(2);
      expect(await snapshotMain(["--out", "x.state", "--features", "warp"])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join("")).toMatch(/--out FILE is required[\s\S]*unknown feature "warp"/);
  });
});

/** `v86-balloon snapshot --memory 128 --commands "..." --out guest.state`: see snapshot.ts. */
import { writeFileSync } from "node:fs";
import { parseFeatures } from "../vocabulary.js";
import { makeSnapshot, type SnapshotOptions } from "./snapshot.js";

export const SNAPSHOT_USAGE = `usage: v86-balloon snapshot --out FILE [options]

Boots the guest, runs the commands, compacts its memory with the balloon (drop caches, a free page
hinting cycle, inflate to a floor, free page reporting of single pages, deflate) and writes a gzip
state file that
<v86-balloon-vm state="FILE"> and mount(el, { state }) restore instead of booting.

  --out FILE             the state file to write (required)
  --memory MIB           guest RAM (default 128); the page restoring it gets the same
  --commands "CMD"       shell line(s) to run before saving (newlines separate commands)
  --features a,b,...     balloon features offered (default: the element's default set)
  --floor MIB            memory the balloon leaves the guest while compacting (default 16)
  --image-dir D | --kernel F --initrd F   other guest images (the page must load the same ones)
`;

const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;

export async function snapshotMain(argv: string[]): Promise<number> {
  const o: SnapshotOptions = {};
  let out: string | undefined;
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      const val = () => {
        const v = argv[++i];
        if (v === undefined) throw new Error(`${a} needs a value`);
        return v;
      };
      switch (a) {
        case "--out": case "-o": out = val(); break;
        case "--memory": o.memoryMiB = Number(val()); break;
        case "--commands": o.commands = val(); break;
        case "--features": o.features = parseFeatures(val()); break;
        case "--floor": o.floorMiB = Number(val()); break;
        case "--image-dir": o.imageDir = val(); break;
        case "--kernel": o.kernel = val(); break;
        case "--initrd": o.initrd = val(); break;
        case "--help": case "-h": process.stdout.write(SNAPSHOT_USAGE); return 0;
        default: throw new Error(`unknown option ${a}`);
      }
    }
    if (!out) throw new Error("--out FILE is required");
    if (o.memoryMiB !== undefined && !Number.isInteger(o.memoryMiB)) throw new Error("--memory wants a whole number of MiB");
    if (o.floorMiB !== undefined && !(o.floorMiB >= 4)) throw new Error("--floor wants 4 MiB or more");
  } catch (e) {
    process.stderr.write(`v86-balloon snapshot: ${(e as Error).message}\n\n${SNAPSHOT_USAGE}`);
    return 2;
  }
  try {
    const s = await makeSnapshot({ ...o, onLog: (l) => process.stderr.write(`# ${l}\n`) });
    writeFileSync(out, s.file);
    const h = s.header;
    const removed = 1 - s.file.byteLength / s.uncompactedFileBytes;
    process.stdout.write(
      `${out}: ${mib(s.file.byteLength)} gzip (v86 state ${mib(h.rawBytes)} raw), ${h.memoryMiB} MiB guest\n` +
        `without the balloon's compaction: ${mib(s.uncompactedFileBytes)} gzip (${mib(h.uncompactedRawBytes ?? 0)} raw)\n` +
        `the balloon removed ${(100 * removed).toFixed(1)} % of the compressed state (${(100 * (1 - h.rawBytes / (h.uncompactedRawBytes ?? h.rawBytes))).toFixed(1)} % raw)\n` +
        `guest RAM holding data: ${mib(s.contentPages.before * 4096)} before compaction, ${mib(s.contentPages.after * 4096)} after (in use by the guest: kernel, page tables, files; zero pages are not stored)\n`,
    );
    return 0;
  } catch (e) {
    process.stderr.write(`v86-balloon snapshot: ${(e as Error).message}\n`);
    return 1;
  }
}

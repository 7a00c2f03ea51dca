/**
 * The saved-state file: what `v86-balloon snapshot` writes, `<v86-balloon-vm state=...>` / `mount(el,
 * { state })` restore, and the demo's Save / Load use. One format, read and written only here.
 *
 * Layout (then gzip-compressed as a whole, which browsers undo natively with DecompressionStream):
 *   16 bytes  "V86BALLOONSTATE\0"
 *   u32 LE    header length (<= 64 KiB)
 *   header    UTF-8 JSON (StateHeader): what the state needs to be restored (guest RAM, features,
 *             images) so a mismatch is named before anything is restored
 *   rest      v86's save_state bytes (which carry the balloon device's own saved state)
 *
 * A state file is untrusted input (a URL or a file a visitor picked): everything here is checked with a
 * named error and sizes are capped, before v86 or the device sees a byte.
 */
import { featureByName, MAX_MEMORY_MIB, MIN_MEMORY_MIB, type FeatureName } from "./vocabulary.js";

export const STATE_FORMAT = 1;
const MAGIC = "V86BALLOONSTATE\0";
const MAX_HEADER = 64 * 1024;
/** Largest decompressed file accepted: the biggest guest RAM plus room for device and CPU state. */
export const MAX_STATE_BYTES = (MAX_MEMORY_MIB + 64) * 1024 * 1024;

export interface StateHeader {
  format: number;
  /** Guest RAM in MiB the state was saved with. */
  memoryMiB: number;
  /** Balloon features the device offered (public names). */
  features: FeatureName[];
  /** The guest images it was booted from: manifest sha256 per file (and the kernel version, for messages). */
  images: { kernelVersion?: string; sha256: Record<string, string> };
  /** Size of the v86 state, and what the same state would have weighed without the balloon's compaction. */
  rawBytes: number;
  uncompactedRawBytes?: number;
  /** The commands the guest ran before it was saved (for the reader of the file). */
  commands?: string;
  created: string;
}

/** A state file that cannot be used: bad format, or made for another setup (`mismatch` names what). */
export class StateFileError extends Error {
  constructor(
    message: string,
    readonly mismatch?: "memory" | "features" | "images",
  ) {
    super(message);
    this.name = "StateFileError";
  }
}

const REMAKE = "make the state again with `npx v86-balloon snapshot` for this setup";

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream, limit: number): Promise<Uint8Array> {
  const reader = new Blob([bytes as BlobPart]).stream().pipeThrough(stream).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw new StateFileError(`state file unpacks to more than ${limit} bytes: not a v86-balloon state`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** gzip of the whole file (the CLI also reports this size). */
export function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream("gzip"), Number.MAX_SAFE_INTEGER);
}

/** The file bytes for a header and v86's state (gzip-compressed). */
export async function encodeStateFile(header: StateHeader, v86State: ArrayBuffer): Promise<Uint8Array> {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(MAGIC.length + 4 + json.length + v86State.byteLength);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, json.length, true);
  out.set(json, MAGIC.length + 4);
  out.set(new Uint8Array(v86State), MAGIC.length + 4 + json.length);
  return gzip(out);
}

function checkHeader(h: unknown): StateHeader {
  const bad = (what: string): never => {
    throw new StateFileError(`state file header: ${what}`);
  };
  if (typeof h !== "object" || h === null) return bad("not an object");
  const o = h as Record<string, unknown>;
  if (o.format !== STATE_FORMAT) bad(`format ${JSON.stringify(o.format)}, this version reads format ${STATE_FORMAT}`);
  const mem = o.memoryMiB;
  if (typeof mem !== "number" || !Number.isInteger(mem) || mem < MIN_MEMORY_MIB || mem > MAX_MEMORY_MIB) bad(`memoryMiB ${JSON.stringify(mem)}`);
  if (!Array.isArray(o.features)) bad("features is not a list");
  const features = (o.features as unknown[]).map((f) => {
    if (typeof f !== "string") return bad(`feature ${JSON.stringify(f)}`);
    try {
      return featureByName(f).name;
    } catch (e) {
      return bad((e as Error).message);
    }
  });
  const images = o.images as { sha256?: unknown; kernelVersion?: unknown } | undefined;
  if (typeof images !== "object" || images === null || typeof images.sha256 !== "object" || images.sha256 === null) bad("images.sha256 missing");
  for (const [k, v] of Object.entries(images!.sha256 as object)) if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) bad(`images.sha256.${k}`);
  if (typeof o.rawBytes !== "number") bad("rawBytes missing");
  return { ...(o as unknown as StateHeader), features };
}

/** Reads a state file (gzip-compressed or not): its checked header and v86's state. */
export async function decodeStateFile(file: ArrayBuffer | Uint8Array): Promise<{ header: StateHeader; v86State: ArrayBuffer }> {
  let bytes = file instanceof Uint8Array ? file : new Uint8Array(file);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = await pipe(bytes, new DecompressionStream("gzip"), MAX_STATE_BYTES);
    } catch (e) {
      if (e instanceof StateFileError) throw e;
      throw new StateFileError(`state file is not valid gzip (truncated?): ${(e as Error).message}`);
    }
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) throw new StateFileError("not a v86-balloon state file (no V86BALLOONSTATE signature); make one with `npx v86-balloon snapshot`");
  if (bytes.length < MAGIC.length + 4) throw new StateFileError("state file is truncated (no header)");
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(MAGIC.length, true);
  const start = MAGIC.length + 4;
  if (len > MAX_HEADER || start + len > bytes.length) throw new StateFileError(`state file header length ${len} is impossible (truncated file?)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, start + len)));
  } catch (e) {
    throw new StateFileError(`state file header is not JSON: ${(e as Error).message}`);
  }
  const header = checkHeader(parsed);
  const v86State = bytes.slice(start + len).buffer;
  if (v86State.byteLength !== header.rawBytes) {
    throw new StateFileError(`state file is truncated: ${v86State.byteLength} bytes of v86 state, the header says ${header.rawBytes}`);
  }
  return { header, v86State };
}

/**
 * Throws a StateFileError naming the first difference between the state and what the page asks for
 * (only what the page set explicitly is compared; the rest is taken from the state).
 */
export function checkStateMatches(
  header: StateHeader,
  want: { memoryMiB?: number; features?: readonly FeatureName[]; imageSha256?: Record<string, string> },
): void {
  if (want.memoryMiB !== undefined && want.memoryMiB !== header.memoryMiB) {
    throw new StateFileError(`the state was saved with ${header.memoryMiB} MiB of guest RAM, this VM asks for ${want.memoryMiB} MiB: drop the memory option or ${REMAKE}`, "memory");
  }
  if (want.features) {
    const a = [...want.features].sort().join(",");
    const b = [...header.features].sort().join(",");
    if (a !== b) throw new StateFileError(`the state was saved with balloon features "${b || "none"}", this VM offers "${a || "none"}": drop the features option or ${REMAKE}`, "features");
  }
  if (want.imageSha256) {
    for (const [file, sha] of Object.entries(header.images.sha256)) {
      const have = want.imageSha256[file];
      if (have && have !== sha) {
        const kv = header.images.kernelVersion ? ` (kernel ${header.images.kernelVersion})` : "";
        throw new StateFileError(`the state was saved from other guest images${kv}: ${file} differs (sha256 ${sha.slice(0, 12)}… in the state, ${have.slice(0, 12)}… here): ${REMAKE}`, "images");
      }
    }
  }
}

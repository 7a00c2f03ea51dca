/**
 * v86 0.5 state files for tests (uncompressed form): 16-byte header (magic, version 6, total length,
 * info length), the info block `{ state, buffer_infos }` as JSON, then the buffers, 4-aligned. Lets a
 * test build a file around a balloon slot, or take a real one apart and corrupt the balloon's part.
 */
const MAGIC = 0x86768676;
const SLOT = 100;

export interface V86StateParts {
  state: unknown[];
  buffers: Uint8Array[];
}

export function encodeV86State({ state, buffers }: V86StateParts): ArrayBuffer {
  let offset = 0;
  const infos = buffers.map((b) => {
    const info = { offset, length: b.length };
    offset = (offset + b.length + 3) & ~3;
    return info;
  });
  const info = new TextEncoder().encode(JSON.stringify({ state, buffer_infos: infos }));
  const start = (16 + info.length + 3) & ~3;
  const out = new Uint8Array(start + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setInt32(4, 6, true);
  dv.setUint32(8, out.length, true);
  dv.setInt32(12, info.length, true);
  out.set(info, 16);
  buffers.forEach((b, i) => out.set(b, start + infos[i]!.offset));
  return out.buffer;
}

export function decodeV86State(file: ArrayBuffer): V86StateParts {
  const dv = new DataView(file);
  if (dv.getUint32(0, true) !== MAGIC) throw new Error("not an uncompressed v86 state");
  const infoLen = dv.getInt32(12, true);
  const info = JSON.parse(new TextDecoder().decode(new Uint8Array(file, 16, infoLen))) as { state: unknown[]; buffer_infos: { offset: number; length: number }[] };
  const start = (16 + infoLen + 3) & ~3;
  return { state: info.state, buffers: info.buffer_infos.map((b) => new Uint8Array(file.slice(start + b.offset, start + b.offset + b.length))) };
}

/** A v86 file holding only a balloon slot `[json, bitmap]` (or none). */
export function balloonOnlyFile(slot: [string, Uint8Array] | null): ArrayBuffer {
  const state: unknown[] = [];
  if (slot) state[SLOT] = [slot[0], { __state_type__: 5, buffer_id: 0 }];
  return encodeV86State({ state, buffers: slot ? [slot[1]] : [] });
}

/** A copy of a real v86 state with the balloon's JSON edited by `f`. */
export function editBalloonJson(file: ArrayBuffer, f: (j: { transport: Record<string, unknown>; device: Record<string, unknown> }) => void): ArrayBuffer {
  const parts = decodeV86State(file);
  const slot = parts.state[SLOT] as [string, unknown];
  const j = JSON.parse(slot[0]) as { transport: Record<string, unknown>; device: Record<string, unknown> };
  f(j);
  parts.state[SLOT] = [JSON.stringify(j), slot[1]];
  return encodeV86State(parts);
}

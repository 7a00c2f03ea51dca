/**
 * The fuzzer's own model of the device, written from the spec (virtio 1.2 §2.7 split virtqueues, §4.1
 * virtio-pci, §5.5 balloon, and the DEVICE_INIT patch v3) and the decisions in src/balloon/README.md,
 * WITHOUT importing the device: for one request it predicts which guest bytes the device may write (and,
 * where it can, exactly what they become) and which diagnostics the request must and may produce.
 *
 * A prediction is "exact" when it could follow every read the device makes; it turns inexact when a
 * request rewrites memory it reads itself (a PFN list inside a page it fills, a descriptor table inside a
 * reported range): then only the allowed-write set is checked, widened to all of RAM for what follows.
 */
import type { RigConfig } from "./rig.js";

export const PAGE = 4096;
/**
 * Work one notify surely completes (half the device's budget of 2048 units: 1 per chain + pages): chains
 * past it may be deferred to a later host task (a clock tick here).
 */
const MODEL_BUDGET = 1024;
/** PFNs one request may carry: one 4 KiB page of le32 entries. */
const MAX_PFNS = PAGE / 4;
const F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4;
const BIT = { stats: 1n, hint: 3n, poison: 4n, reporting: 5n, initReported: 6n, initOnInflate: 7n, indirect: 28n, eventIdx: 29n } as const;
const has = (f: bigint, b: bigint) => ((f >> b) & 1n) === 1n;

/** Walk error kinds (virtio 1.2 §2.7.5: what makes a chain malformed). */
export const WALK_KINDS = [
  "head-out-of-range", "next-out-of-range", "loop", "segment-out-of-ram", "zero-length",
  "readable-after-writable", "too-many-segments", "bad-indirect-table", "nested-indirect",
  "indirect-with-next", "indirect-not-negotiated", "desc-table-out-of-ram",
];

/** What the model reads of the device before a request (registers and device state a driver could know). */
export interface Pre {
  status: number;
  queueSelect: number;
  driverFeatureSelect: number;
  negotiated: bigint;
  numQueues: number;
  queues: Array<{ size: number; descAddr: number; driverAddr: number; deviceAddr: number; enabled: boolean; lastAvail: number; usedIdx: number; allowIndirect: boolean; eventIdx: boolean }>;
  live: boolean;
  poisonVal: number;
  inflated(pfn: number): boolean;
  /** The stats buffer the device holds (read only when a stats chain needs it: a full save is costly). */
  statsHeld(): number | null;
}

export interface Expect {
  /** Guest byte ranges [start, end) the request may change. */
  allowed: Array<[number, number]>;
  /** Every byte outside `loose` must equal this after the request (null = inexact). */
  predicted: Uint8Array | null;
  /** Ranges whose new content the model does not predict (still inside `allowed`). */
  loose: Array<[number, number]>;
  /** Kinds that must each appear at least once. */
  must: Set<string>;
  /** Kinds that may appear (besides `must`). `null` = anything goes. */
  may: Set<string> | null;
  /** Driver mistakes the device must diagnose under some name (no existing kind for them): reasons. */
  mustAny: Array<{ key: string; reason: string }>;
  /** detail fields a diagnostic of a kind must carry (e.g. the first bad PFN as the driver wrote it). */
  details: Array<{ kind: string; field: string; value: unknown }>;
}

export function emptyExpect(): Expect {
  return { allowed: [], predicted: null, loose: [], must: new Set(), may: new Set(), mustAny: [], details: [] };
}

function roles(f: bigint): string[] {
  const r = ["inflate", "deflate"];
  if (has(f, BIT.stats)) r.push("stats");
  if (has(f, BIT.hint)) r.push("free-page");
  if (has(f, BIT.reporting)) r.push("reporting");
  return r;
}

function fillByte(f: bigint, poisonVal: number): number | null {
  if (!has(f, BIT.poison)) return 0;
  const b = poisonVal & 0xff;
  return (poisonVal >>> 0) === ((b * 0x01010101) >>> 0) ? b : null;
}

class Inexact extends Error {}

const reusable = new Map<number, Uint8Array>();

/** Guest RAM as the device will see it while it works through one notify; reads of pages whose content the model lost abort exactness. */
class Shadow {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  readonly unknownPages = new Set<number>();
  constructor(ram: Uint8Array) {
    // One buffer per RAM size, reused: a notify's prediction is checked before the next one is made.
    let buf = reusable.get(ram.length);
    if (!buf) reusable.set(ram.length, (buf = new Uint8Array(ram.length)));
    buf.set(ram);
    this.bytes = buf;
    this.view = new DataView(buf.buffer);
  }
  private touch(addr: number, len: number): void {
    if (this.unknownPages.size === 0) return;
    for (let p = Math.floor(addr / PAGE); p * PAGE < addr + len; p++) if (this.unknownPages.has(p)) throw new Inexact();
  }
  u16(a: number): number { this.touch(a, 2); return this.view.getUint16(a, true); }
  u32(a: number): number { this.touch(a, 4); return this.view.getUint32(a, true); }
  forget(a: number, len: number): void { for (let p = Math.floor(a / PAGE); p * PAGE < a + len; p++) this.unknownPages.add(p); }
  set16(a: number, v: number): void { this.view.setUint16(a, v, true); }
  set32(a: number, v: number): void { this.view.setUint32(a, v >>> 0, true); }
}

const inRam = (ram: number, addr: number, len: number) => addr >= 0 && len >= 0 && addr <= ram && len <= ram - addr;

interface Seg { addr: number; len: number; write: boolean }

/** Virtio 1.2 §2.7.5 / §2.7.5.3 chain walk; returns segments or a walk error kind. */
function walk(sh: Shadow, ram: number, q: Pre["queues"][number], head: number): Seg[] | string {
  if (head >= q.size) return "head-out-of-range";
  let table = q.descAddr, entries = q.size, idx = head, visited = 0, indirect = false, seenWrite = false;
  const segs: Seg[] = [];
  const maxSeg = Math.max(q.size, 256);
  for (;;) {
    if (++visited > entries) return "loop";
    const d = table + 16 * idx;
    const lo = sh.u32(d), hi = sh.u32(d + 4), len = sh.u32(d + 8), flags = sh.u16(d + 12), next = sh.u16(d + 14);
    if (flags & F_INDIRECT) {
      if (!q.allowIndirect) return "indirect-not-negotiated";
      if (indirect) return "nested-indirect";
      if (flags & F_NEXT) return "indirect-with-next";
      if (len === 0 || len % 16 !== 0 || hi !== 0 || !inRam(ram, lo, len)) return "bad-indirect-table";
      table = lo; entries = len / 16; idx = 0; visited = 0; indirect = true;
      continue;
    }
    if (len === 0) return "zero-length";
    if (hi !== 0 || !inRam(ram, lo, len)) return "segment-out-of-ram";
    const w = (flags & F_WRITE) !== 0;
    if (w) seenWrite = true;
    else if (seenWrite) return "readable-after-writable";
    if (segs.length >= maxSeg) return "too-many-segments";
    segs.push({ addr: lo, len, write: w });
    if (!(flags & F_NEXT)) return segs;
    if (next >= entries) return "next-out-of-range";
    idx = next;
  }
}

export interface NotifyContext {
  config: RigConfig;
  pre: Pre;
  ram: Uint8Array;
}

/** Faults that change what a request writes or when: the model then only bounds the writes. */
function faultsLoosen(c: RigConfig): boolean {
  const f = c.faults;
  return !!(f.lieAboutInit || f.setPaddingBits || f.shortReportUsedLength || f.delayUsedMs || f.dropUsedEvery || f.resetMidInflate);
}

/** A notify written at BAR offset `offset` with `width` and `value`. */
export function expectNotify(ctx: NotifyContext, offset: number, width: number, value: number): Expect {
  const e = emptyExpect();
  const { pre, config } = ctx;
  const index = value & 0xffff;
  const byAddress = (offset - 0x80) / 2;
  if (width !== 2 || !Number.isInteger(byAddress) || byAddress !== index) {
    // 4.1.4.4 / 4.1.5.2: the driver writes the queue index (16 bits) at the queue's own notify address.
    e.mustAny.push({ key: "notify-mismatch", reason: `notify of queue ${index} written at BAR 0x${offset.toString(16)} with width ${width} (queue ${index}'s notify address is 0x${(0x80 + 2 * index).toString(16)}, width 2)` });
    e.may = null;
    e.allowed.push([0, config.ram]);
    return e;
  }
  const q = pre.queues[index];
  if (!q || index >= pre.numQueues || !q.enabled) {
    e.must.add("notify-disabled-queue");
    return e;
  }
  if (!(pre.status & 4)) {
    e.must.add("notify-before-driver-ok");
    return e;
  }
  if (pre.status & 64) {
    e.mustAny.push({ key: "notify-while-needs-reset", reason: `notify of queue ${index} while DEVICE_NEEDS_RESET is set (dropped)` });
    e.may = null;
    return e;
  }
  if (!pre.live) {
    // DRIVER_OK without FEATURES_OK: the device never went live; the status write was the mistake.
    e.may = null;
    return e;
  }
  const role = roles(pre.negotiated)[index];
  if (!role) {
    e.must.add("notify-disabled-queue");
    return e;
  }
  try {
    notifyChains(ctx, e, index, role);
    if (faultsLoosen(config)) e.predicted = null;
  } catch (x) {
    if (!(x instanceof Inexact)) throw x;
    // What was decided before the model lost track stays required (chains already walked were read right;
    // a report's overlap must still be diagnosed); what follows is only bounded.
    e.predicted = null;
    e.allowed.push([0, config.ram]);
    e.may = null;
  }
  if (config.faults.resetMidInflate && role === "inflate") {
    // The fault may take the first request (not handled at all: DEVICE_NEEDS_RESET instead).
    e.must.clear();
    e.details.length = 0;
    e.may = null;
  }
  return e;
}

function notifyChains(ctx: NotifyContext, e: Expect, index: number, role: string): void {
  const { pre, config } = ctx;
  const ram = config.ram;
  const q = pre.queues[index]!;
  const sh = new Shadow(ctx.ram);
  const may = e.may!;
  const fill = fillByte(pre.negotiated, pre.poisonVal);
  const inflatedNow = new Map<number, boolean>();
  const isInflated = (p: number) => inflatedNow.get(p) ?? pre.inflated(p);
  let lastAvail = q.lastAvail, usedIdx = q.usedIdx;
  let held: number | null | undefined;
  const write = (addr: number, len: number) => e.allowed.push([addr, addr + len]);
  const pushUsed = (head: number, len: number) => {
    const at = q.deviceAddr + 4 + 8 * (usedIdx % q.size);
    sh.set32(at, head);
    sh.set32(at + 4, len);
    write(at, 8);
    usedIdx = (usedIdx + 1) & 0xffff;
    sh.set16(q.deviceAddr + 2, usedIdx);
    write(q.deviceAddr + 2, 2);
  };
  // The device completes a notify's chains together, after handling them all (one interrupt).
  const done: Array<[number, number]> = [];
  const fillPages = (pages: Iterable<number>, byte: number) => {
    for (const p of pages) { sh.bytes.fill(byte, p * PAGE, p * PAGE + PAGE); write(p * PAGE, PAGE); }
  };
  // What the current chain reads while it writes (its PFN list): a write there makes order matter.
  let structural: Array<[number, number]> = [];
  const overlapsStructure = (a: number, len: number) => structural.some(([s, l]) => a < s + l && s < a + len);

  // Work so far in the device's units (an upper bound: 1 per chain plus the pages it may touch). Past
  // MODEL_BUDGET the device may leave the rest of the queue to a later host task: not modelled further.
  let units = 0;
  for (let guard = 0; guard <= 0x10000; guard++) {
    if (units >= MODEL_BUDGET) throw new Inexact();
    const availIdx = sh.u16(q.driverAddr + 2);
    const pending = (availIdx - lastAvail) & 0xffff;
    if (pending === 0) break;
    if (pending > q.size) {
      e.must.add("avail-idx-jump");
      may.add("chain-error");
      break;
    }
    const head = sh.u16(q.driverAddr + 4 + 2 * (lastAvail % q.size));
    lastAvail = (lastAvail + 1) & 0xffff;
    if (q.eventIdx) { sh.set16(q.deviceAddr + 4 + 8 * q.size, lastAvail); write(q.deviceAddr + 4 + 8 * q.size, 2); }
    const w = walk(sh, ram, q, head);
    if (typeof w === "string") {
      e.must.add(w);
      if (head < q.size) done.push([head, 0]);
      continue;
    }
    const rd = w.filter((s) => !s.write), wr = w.filter((s) => s.write);
    const rdBytes = rd.reduce((a, s) => a + s.len, 0), wrBytes = wr.reduce((a, s) => a + s.len, 0);
    units += 1 + Math.ceil(rdBytes / 4) + Math.ceil(wrBytes / PAGE);
    structural = rd.map((s) => [s.addr, s.len]);
    let used: number | null = 0;
    if (role === "inflate" || role === "deflate") {
      used = pfnRequest(role, rd, wr, wrBytes);
    } else if (role === "reporting") {
      used = report(rd, wr, wrBytes);
    } else if (role === "free-page") {
      for (const k of ["hint-cmd-id-bad-size", "hint-cmd-id-repeated", "hint-cmd-id-mismatch", "hint-pages-ignored", "range-not-page-aligned", "ranges-overlap"]) may.add(k);
      for (const s of wr) { write(s.addr, s.len); e.loose.push([s.addr, s.addr + s.len]); sh.forget(s.addr, s.len); }
      used = 0;
    } else {
      if (wr.length) e.must.add("unexpected-writable");
      if (rdBytes % 10 !== 0) e.must.add("stats-buffer-misaligned");
      if (held === undefined) held = pre.statsHeld();
      if (held !== null) { e.must.add("stats-extra-buffer"); pushUsed(held, 0); }
      held = head;
      used = null;
    }
    if (used !== null) done.push([head, used]);
  }
  for (const [head, len] of done) pushUsed(head, len);

  if (!faultsLoosen(config)) e.predicted = sh.bytes;

  function readPfns(rd: Seg[]): number[] {
    const out: number[] = [];
    for (const s of rd) for (let o = 0; o < s.len; o += 4) out.push(sh.u32(s.addr + o));
    return out;
  }

  function pfnRequest(r: string, rd: Seg[], wr: Seg[], wrBytes: number): number {
    const bit7 = has(pre.negotiated, BIT.initOnInflate);
    const refuse = (kind: string) => {
      e.must.add(kind);
      if (wr.length && r === "deflate") e.must.add("unexpected-writable");
      else if (wr.length && !bit7) may.add("unexpected-writable");
      return 0;
    };
    if (rd.some((s) => s.len % 4 !== 0)) return refuse("pfn-buffer-misaligned");
    // A list longer than one 4 KiB driver page of PFNs is refused whole (bounds the work of one chain).
    if (rd.reduce((a, s) => a + s.len, 0) / 4 > MAX_PFNS) return refuse("pfn-list-too-long");
    const pfns = readPfns(rd);
    const n = pfns.length;
    if (n === 0) e.must.add("pfn-buffer-empty");
    if (n > 256) e.must.add("too-many-pfns");
    if (r === "inflate") {
      // A page holding the request's own list or bitmap is not unused: the request is refused whole.
      const own = new Set<number>();
      for (const s of [...rd, ...wr]) for (let p = Math.floor(s.addr / PAGE); p * PAGE < s.addr + s.len; p++) own.add(p);
      if (pfns.some((p) => own.has(p))) {
        e.must.add("request-inflates-own-buffer");
        return 0;
      }
    }
    const pages = ram / PAGE;
    const bad = pfns.findIndex((p) => p >= pages);
    if (bad >= 0) {
      e.must.add("pfn-out-of-range");
      e.details.push({ kind: "pfn-out-of-range", field: "firstBadPfn", value: pfns[bad] });
    }
    if (r === "deflate") {
      if (wr.length) e.must.add("unexpected-writable");
      let notIn = 0;
      for (const p of pfns) if (p < pages) { if (isInflated(p)) inflatedNow.set(p, false); else notIn++; }
      if (notIn) e.must.add("deflate-not-inflated");
      return 0;
    }
    const need = Math.ceil(n / 8);
    let bitmapOk = false;
    if (!bit7) { if (wr.length) e.must.add("unexpected-writable"); }
    else if (wrBytes < need) e.must.add("bitmap-too-short");
    else if (n > 0) bitmapOk = true;
    let already = 0;
    const fillSet = new Set<number>();
    for (const p of pfns) {
      if (p >= pages) continue;
      if (isInflated(p)) already++;
      inflatedNow.set(p, true);
      if (fill !== null) fillSet.add(p);
    }
    if (already) e.must.add("inflate-already-inflated");
    // The request rewriting its own PFN list or bitmap, or this notify's rings: order decides; not modelled.
    // lieAboutInit (fault): with a bitmap to lie in, nothing is filled but the bits say it was.
    if (bitmapOk && config.faults.lieAboutInit) fillSet.clear();
    for (const p of fillSet) if (overlapsStructure(p * PAGE, PAGE)) throw new Inexact();
    if (bitmapOk) for (const s of wr) if (overlapsStructure(s.addr, Math.min(s.len, need))) throw new Inexact();
    if (bitmapOk) for (const p of fillSet) for (const s of wr) if (s.addr < p * PAGE + PAGE && p * PAGE < s.addr + s.len) throw new Inexact();
    fillPages(fillSet, fill ?? 0);
    if (!bitmapOk) return 0;
    const bm = new Uint8Array(need);
    pfns.forEach((p, i) => { if (p < pages && fill !== null) bm[i >> 3]! |= 1 << (i & 7); });
    let o = 0;
    for (const s of wr) {
      const k = Math.min(s.len, need - o);
      if (k <= 0) break;
      sh.bytes.set(bm.subarray(o, o + k), s.addr);
      write(s.addr, k);
      o += k;
    }
    return need;
  }

  function report(rd: Seg[], wr: Seg[], wrBytes: number): number {
    const bit6 = has(pre.negotiated, BIT.initReported);
    const poison = has(pre.negotiated, BIT.poison);
    if (rd.length) e.must.add("unexpected-readable");
    if (wr.length === 0) { e.must.add("report-without-pages"); return 0; }
    if (wr.some((s) => s.addr % PAGE !== 0 || s.len % PAGE !== 0)) e.must.add("range-not-page-aligned");
    const sorted = [...wr].sort((a, b) => a.addr - b.addr);
    const overlap = sorted.some((s, i) => i > 0 && sorted[i - 1]!.addr + sorted[i - 1]!.len > s.addr);
    if (overlap) e.mustAny.push({ key: "report-ranges-overlap", reason: "report ranges overlap (a free page reported twice in one report)" });
    if (wrBytes > ram) e.mustAny.push({ key: "report-longer-than-ram", reason: `report ranges sum to ${wrBytes} bytes, more than guest RAM` });
    // lieAboutInit (fault) with bit 6: nothing filled, the used length claims it all.
    const wantFill = fill !== null && (bit6 || poison || config.zeroFreedPages) && !(bit6 && config.faults.lieAboutInit);
    for (const s of wr) if (wantFill && overlapsStructure(s.addr, s.len)) throw new Inexact();
    if (overlap || wrBytes > ram) {
      // The device may refuse such a report; its writes stay inside the ranges, their content unpredicted.
      for (const s of wr) { write(s.addr, s.len); e.loose.push([s.addr, s.addr + s.len]); sh.forget(s.addr, s.len); }
      e.predicted = null;
      throw new LooseUsed();
    }
    if (wantFill) for (const s of wr) { sh.bytes.fill(fill, s.addr, s.addr + s.len); write(s.addr, s.len); }
    return bit6 && wantFill ? wrBytes : 0;
  }
}

/** A report the device may refuse or take: its used length is not predicted, so the rest of the notify is not either. */
class LooseUsed extends Inexact {}

/**
 * Structure-aware generator: a malicious virtio driver. It negotiates (in order, out of order, or not at
 * all), lays queues out (in RAM, at its edges, past it, past 4 GiB), builds chains per queue role (PFN
 * lists, bitmaps, report ranges, hint command IDs, stats buffers) that are right, slightly wrong or
 * hostile (loops, huge lengths, broken indirect tables, avail-idx jumps, PFNs past RAM), writes every
 * config offset at every width, resets anywhere, and calls the host API and save/restore in between.
 * It emits concrete operations (ops.ts), so what it did replays without it.
 */
import type { Rig, RigConfig } from "./rig.js";
import { toHex, type HostCall, type Op } from "./ops.js";

type Rand = () => number;
const PAGE = 4096;
const C = 0x00, DEV = 0x60, NOTIFY = 0x80;
const F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4;

/** mixed: everything; notify: mostly chains and notifies; restore: every other step a hostile restore. */
export type Mode = "mixed" | "notify" | "restore";

interface DriverQueue { size: number; desc: number; avail: number; used: number; availIdx: number; nextDesc: number }

const ROLE_BITS: Array<[string, number]> = [["stats", 1], ["free-page", 3], ["reporting", 5]];

export function randomConfig(r: Rand): RigConfig {
  const ram = [128 << 10, 256 << 10, 256 << 10, 256 << 10, 512 << 10, 1 << 20][Math.floor(r() * 6)]!;
  const offer: Record<string, boolean> = {};
  for (const name of ["MUST_TELL_HOST", "STATS_VQ", "DEFLATE_ON_OOM", "FREE_PAGE_HINT", "PAGE_POISON", "PAGE_REPORTING", "DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE"]) {
    if (r() < 0.15) offer[name] = false;
  }
  const faults: RigConfig["faults"] = {};
  if (r() < 0.2) {
    const k = Math.floor(r() * 8);
    if (k === 0) faults.lieAboutInit = true;
    if (k === 1) faults.setPaddingBits = true;
    if (k === 2) faults.shortReportUsedLength = true;
    if (k === 3) faults.delayUsedMs = 1 + Math.floor(r() * 50);
    if (k === 4) faults.dropUsedEvery = 1 + Math.floor(r() * 4);
    if (k === 5) faults.withholdInterrupts = true;
    if (k === 6) faults.hugeNumPages = true;
    if (k === 7) faults.resetMidInflate = true;
  }
  return {
    ram, base: 4096 * (1 + Math.floor(r() * 4)), offer, faults,
    zeroFreedPages: r() < 0.8, hintAutoDone: r() < 0.7,
    initialTarget: r() < 0.3 ? Math.floor(r() * (ram / PAGE) * 1.5) : 0,
    fill: r() < 0.5 ? 0x5a : Math.floor(r() * 256),
  };
}

const INTERESTING32 = [0, 1, 2, 3, 4, 0xf, 0x10, 0x40, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x200000, 0x1fffff, 0x01000000];

export class Generator {
  private queues: DriverQueue[] = [];
  private accepted = 0n;
  private bump: number;
  private readonly ram: number;
  private readonly pages: number;

  constructor(private readonly r: Rand, readonly config: RigConfig, readonly mode: Mode) {
    this.ram = config.ram;
    this.pages = this.ram / PAGE;
    this.bump = 0x10000;
  }

  private int(n: number): number { return Math.floor(this.r() * n); }
  private chance(p: number): boolean { return this.r() < p; }
  private pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }

  /** The next step: a few ops ending in (usually) one or more requests. */
  next(peek: Rig): Op[] {
    const k = this.r();
    if (this.mode === "notify") {
      const broken = (peek.transport.status & 64) !== 0 && this.chance(0.3);
      if (this.queues.length === 0 || k < 0.01 || broken) return this.negotiate(peek, true);
      if (k < 0.88) return this.chainsAndNotify(peek);
      if (k < 0.92) return this.hostOp(peek);
      if (k < 0.95) return [{ t: "clk", ms: this.pick([1, 10, 100, 1000]) }];
      if (k < 0.97) return this.configWrite();
      if (k < 0.985) return [{ t: "sr", fresh: this.chance(0.2) }];
      return [{ t: "mut", s: this.int(2 ** 31) }];
    }
    if (this.mode === "restore" && this.chance(0.85)) return [{ t: "mut", s: this.int(2 ** 31) }];
    if (this.queues.length === 0 && k < 0.5) return this.negotiate(peek, this.chance(0.7));
    if (k < 0.08) return this.negotiate(peek, this.chance(0.6));
    if (k < 0.45) return this.queues.length ? this.chainsAndNotify(peek) : this.negotiate(peek, true);
    if (k < 0.58) return [this.randomWrite()];
    if (k < 0.66) return [{ t: "r", o: this.int(256), w: this.pick([1, 2, 4] as const) }];
    if (k < 0.72) return this.configWrite();
    if (k < 0.78) return this.hostOp(peek);
    if (k < 0.81) return [{ t: "clk", ms: this.pick([1, 5, 50, 500, 5000]) }];
    if (k < 0.84) return [{ t: "w", o: C + 0x14, w: 1, v: 0 }];
    if (k < 0.88) return [{ t: "sr", fresh: this.chance(0.15) }];
    if (k < 0.94) return [{ t: "mut", s: this.int(2 ** 31) }];
    return this.queueSetupNoise();
  }

  // ---- negotiation -------------------------------------------------------------------------------

  private w(o: number, w: 1 | 2 | 4, v: number): Op { return { t: "w", o, w, v: v >>> 0 }; }

  private negotiate(peek: Rig, proper: boolean): Op[] {
    const ops: Op[] = [];
    const offered = peek.device.offeredBits | (1n << 28n);
    let acc = offered & ~(this.chance(0.3) ? BigInt(this.int(256)) : 0n);
    if (!proper && this.chance(0.3)) acc |= 1n << BigInt(this.int(64));
    if (this.chance(0.2)) acc &= ~(1n << 5n);
    this.accepted = acc;
    ops.push(this.w(C + 0x14, 1, 0), this.w(C + 0x14, 1, 1), this.w(C + 0x14, 1, 3));
    ops.push(this.w(C + 0x00, 4, 0), { t: "r", o: C + 0x04, w: 4 }, this.w(C + 0x00, 4, 1), { t: "r", o: C + 0x04, w: 4 });
    ops.push(this.w(C + 0x08, 4, 0), this.w(C + 0x0c, 4, Number(acc & 0xffffffffn)), this.w(C + 0x08, 4, 1), this.w(C + 0x0c, 4, Number(acc >> 32n)));
    ops.push(this.w(C + 0x14, 1, 0xb), { t: "r", o: C + 0x14, w: 1 });
    const roles = ["inflate", "deflate", ...ROLE_BITS.filter(([, b]) => (acc >> BigInt(b)) & 1n).map(([n]) => n)];
    this.queues = [];
    for (let i = 0; i < roles.length; i++) ops.push(...this.setupQueue(i, proper));
    if ((acc >> 4n) & 1n) ops.push(this.w(DEV + 12, 4, this.chance(0.8) ? this.pick([0, 0xaaaaaaaa, 0x5a5a5a5a]) : this.int(2 ** 32)));
    if (this.chance(0.3) && this.queues.length > 2) ops.push(...this.chainsAndNotify(peek, 2)); // Linux's early stats buffer
    ops.push(this.w(C + 0x14, 1, 0xf));
    if (!proper) return this.scramble(ops);
    return ops;
  }

  /** Out of order: steps dropped, swapped, duplicated; status values made up. */
  private scramble(ops: Op[]): Op[] {
    const out = ops.filter(() => !this.chance(0.15));
    for (let i = 0; i < 3; i++) {
      const a = this.int(out.length), b = this.int(out.length);
      [out[a], out[b]] = [out[b]!, out[a]!];
    }
    if (this.chance(0.5)) out.splice(this.int(out.length + 1), 0, this.w(C + 0x14, 1, this.int(256)));
    return out;
  }

  private ringPlace(i: number, size: number, proper: boolean): { desc: number; avail: number; used: number } {
    const base = 0x2000 * i;
    const normal = { desc: base, avail: base + 16 * size, used: (base + 16 * size + 6 + 2 * size + 3) & ~3 };
    if (proper || this.chance(0.5)) return normal;
    const k = this.int(6);
    const edge = this.ram - (16 * size + 6 + 2 * size + 6 + 8 * size + 8);
    if (k === 0) return { desc: edge & ~15, avail: (edge & ~15) + 16 * size, used: ((edge & ~15) + 18 * size + 6 + 3) & ~3 };
    if (k === 1) return { ...normal, used: this.ram - 4 };
    if (k === 2) return { ...normal, desc: 2 ** 32 + base };
    if (k === 3) return { ...normal, avail: normal.avail + 1 };
    if (k === 4) return { ...normal, used: this.ram + 0x1000 };
    return { ...normal, desc: normal.used };
  }

  private addr64(off: number, addr: number): Op[] {
    return [this.w(C + off, 4, addr % 2 ** 32), this.w(C + off + 4, 4, Math.floor(addr / 2 ** 32))];
  }

  private setupQueue(i: number, proper: boolean): Op[] {
    const size = proper || this.chance(0.7) ? this.pick([2, 4, 8, 16, 64, 128, 256, 256]) : this.pick([0, 3, 100, 512, 1024, 0xffff]);
    const place = this.ringPlace(i, size, proper);
    const q: DriverQueue = { size, ...place, availIdx: 0, nextDesc: 0 };
    this.queues[i] = q;
    const ops: Op[] = [this.w(C + 0x16, 2, i), this.w(C + 0x18, 2, size)];
    ops.push(...this.addr64(0x20, place.desc), ...this.addr64(0x28, place.avail), ...this.addr64(0x30, place.used));
    // The driver zeroes its rings (Linux allocates them zeroed).
    for (const [a, n] of [[place.desc, 16 * size], [place.avail, 6 + 2 * size], [place.used, 6 + 8 * size]] as const) {
      if (a >= 0 && a + n <= this.ram && size <= 256) ops.push({ t: "f", a, n, b: 0 });
    }
    ops.push(this.w(C + 0x1c, 2, proper ? 1 : this.pick([1, 1, 1, 0, 2, 0xffff])));
    return ops;
  }

  private queueSetupNoise(): Op[] {
    const ops: Op[] = [this.w(C + 0x16, 2, this.pick([0, 1, 2, 3, 4, 5, 7, 0xffff]))];
    const k = this.int(4);
    if (k === 0) ops.push(this.w(C + 0x24, 4, this.pick([0x01000000, 0x200000, 1, 0xffffffff])));
    else if (k === 1) ops.push(this.w(C + 0x18, 2, this.pick([0, 1, 3, 256, 512])));
    else if (k === 2) ops.push(this.w(C + 0x1c, 2, this.pick([0, 1, 2])));
    else ops.push(...this.addr64(this.pick([0x20, 0x28, 0x30]), this.pick([0, this.ram - 16, this.ram, 2 ** 32, 2 ** 53, 2 ** 60])));
    return ops;
  }

  // ---- register noise ------------------------------------------------------------------------------

  private randomWrite(): Op {
    const w = this.pick([1, 2, 4] as const);
    const o = this.chance(0.7) ? this.int(0x80) : this.int(256);
    const v = this.chance(0.6) ? this.pick(INTERESTING32) : this.int(2 ** 32);
    return this.w(o, w, v);
  }

  private configWrite(): Op[] {
    const k = this.int(4);
    if (k === 0) return [this.w(DEV + 4, 4, this.chance(0.7) ? this.int(this.pages + 2) : this.pick(INTERESTING32))];
    if (k === 1) return [this.w(DEV + 12, 4, this.pick([0, 0xaaaaaaaa, 0x12345678]))];
    const w = this.pick([1, 2, 4] as const);
    return [this.w(DEV + this.int(0x20), w, this.pick(INTERESTING32))];
  }

  private hostOp(peek: Rig): Op[] {
    const c = this.pick<HostCall>(["setTarget", "setTarget", "setStatsInterval", "startHinting", "stopHinting", "finishHinting", "requestStats"]);
    let a: number | undefined;
    if (c === "setTarget") a = this.pick([0, 1, this.int(this.pages), this.pages, this.pages + 1, 2 ** 32, -1, 1.5, NaN, Infinity]);
    if (c === "setStatsInterval") a = this.pick([0, 1, 0.5, 0.001, 1e-6, 30 * 24 * 3600, 2 ** 31, -1, NaN]);
    if (c === "stopHinting") a = this.int(2);
    if (c === "requestStats") a = this.pick([0, 1, 100]);
    void peek;
    return [a === undefined ? { t: "h", c } : { t: "h", c, a: Number.isFinite(a) ? a : 0 }];
  }

  // ---- chains ---------------------------------------------------------------------------------------

  private alloc(len: number, align = 16): number {
    const top = this.ram / 2;
    let a = Math.ceil(this.bump / align) * align;
    if (a + len > top) a = 0x10000;
    this.bump = a + len;
    return a;
  }

  private desc(q: DriverQueue, table: number, i: number, addr: number, len: number, flags: number, next: number): Op {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint32(0, addr % 2 ** 32, true);
    v.setUint32(4, Math.floor(addr / 2 ** 32), true);
    v.setUint32(8, len >>> 0, true);
    v.setUint16(12, flags, true);
    v.setUint16(14, next, true);
    void q;
    return { t: "m", a: table + 16 * i, h: toHex(b) };
  }

  private targetPfn(): number {
    const low = this.pages / 2;
    return low + this.int(this.pages - low);
  }

  private pfnList(): number[] {
    // Mostly short lists; Linux's 256 and the 1024 limit often enough to matter (the JS reference is slow on them).
    const n = this.chance(0.12) ? this.pick([255, 256, 256, 257, 1024, 1025]) : this.pick([0, 1, 2, 3, 7, 8, 9, 16, 17, 32, 64]);
    const out: number[] = [];
    while (out.length < n) {
      const k = this.r();
      if (k < 0.5) { let p = this.targetPfn(); const len = 1 + this.int(32); for (let i = 0; i < len && out.length < n; i++) out.push(Math.min(p++, this.pages - 1)); }
      else if (k < 0.7) { let p = this.targetPfn(); const len = 1 + this.int(32); for (let i = 0; i < len && out.length < n; i++) out.push(Math.max(this.pages / 2, p--)); }
      else if (k < 0.8 && out.length) out.push(out[this.int(out.length)]!);
      else if (k < 0.9) out.push(this.pick([this.pages, this.pages + 1, 0xffffffff, 2 ** 20, 0x80000000]));
      else if (k < 0.93) out.push(this.int(this.pages / 2)); // a page of the driver's own rings or buffers
      else out.push(this.targetPfn());
    }
    return out;
  }

  private le32(xs: number[]): Uint8Array {
    const b = new Uint8Array(xs.length * 4);
    const v = new DataView(b.buffer);
    xs.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true));
    return b;
  }

  /** Buffers of one chain for a role: [addr, len, writable][]. */
  private buffers(role: string, peek: Rig, ops: Op[]): Array<[number, number, boolean]> {
    const bufs: Array<[number, number, boolean]> = [];
    const put = (data: Uint8Array, write = false) => {
      const a = this.alloc(Math.max(1, data.length), 4);
      if (data.length) ops.push({ t: "m", a, h: toHex(data) });
      bufs.push([a, data.length, write]);
    };
    if (role === "inflate" || role === "deflate") {
      const list = this.le32(this.pfnList());
      if (this.chance(0.7) || list.length < 8) put(list);
      else { const cut = 4 * this.int(list.length / 4) + (this.chance(0.1) ? 1 : 0); put(list.subarray(0, cut)); put(list.subarray(cut)); }
      if (role === "inflate" && ((this.accepted >> 7n) & 1n || this.chance(0.1))) {
        const need = Math.ceil(list.length / 4 / 8);
        const len = this.pick([need, need, need, need - 1, need + 3, 1]);
        if (len > 0) { const a = this.alloc(len, 1); ops.push({ t: "f", a, n: len, b: 0xcc }); bufs.push([a, len, true]); }
      }
      if (this.chance(0.02)) bufs.push([0, this.ram, false]);
      return bufs;
    }
    if (role === "reporting") {
      const n = 1 + this.int(6);
      for (let i = 0; i < n; i++) {
        const k = this.r();
        if (k < 0.75) bufs.push([this.targetPfn() * PAGE, PAGE * (1 + this.int(Math.min(16, this.pages / 2))), true]);
        else if (k < 0.85) bufs.push([this.targetPfn() * PAGE + this.int(PAGE), 1 + this.int(3 * PAGE), true]);
        else if (k < 0.9 && bufs.length) bufs.push([...bufs[this.int(bufs.length)]!]);
        else if (k < 0.95) bufs.push([0, this.ram, true]);
        else put(new Uint8Array(4));
      }
      for (const b of bufs) if (b[0] + b[1] > this.ram) b[1] = this.ram - b[0];
      return bufs.filter((b) => b[1] > 0);
    }
    if (role === "free-page") {
      const h = peek.device.hintingState;
      if (this.chance(0.8)) {
        const id = this.pick([h.cmdId, h.cmdId, h.configValue, 0, 1, this.int(2 ** 32)]);
        put(this.le32([id]).subarray(0, this.chance(0.95) ? 4 : 3));
      }
      const n = this.int(4);
      for (let i = 0; i < n; i++) bufs.push([this.targetPfn() * PAGE, PAGE * (1 + this.int(8)), true]);
      for (const b of bufs) if (b[0] + b[1] > this.ram) b[1] = this.ram - b[0];
      return bufs.filter((b) => b[1] > 0);
    }
    // stats
    const n = this.pick([0, 1, 10, 16, 17]);
    const b = new Uint8Array(n * 10 + (this.chance(0.1) ? 3 : 0));
    const v = new DataView(b.buffer);
    for (let i = 0; i < n; i++) { v.setUint16(10 * i, this.int(20), true); v.setBigUint64(10 * i + 2, BigInt(this.int(2 ** 31)) * 4096n, true); }
    if (b.length) put(b);
    if (this.chance(0.05)) put(new Uint8Array(8), true);
    return bufs;
  }

  /** One or more chains on one queue, published, then (usually) a notify. */
  private chainsAndNotify(peek: Rig, only?: number): Op[] {
    const ops: Op[] = [];
    const qi = only ?? this.int(this.queues.length);
    const q = this.queues[qi];
    if (!q || q.size > 256 || q.size === 0) return [this.w(NOTIFY + 2 * qi, 2, qi)];
    const ringsOk = q.desc + 16 * q.size <= this.ram && q.avail + 6 + 2 * q.size <= this.ram;
    const roles = ["inflate", "deflate", ...ROLE_BITS.filter(([, b]) => (this.accepted >> BigInt(b)) & 1n).map(([n]) => n)];
    const role = this.chance(0.95) ? roles[qi] ?? "inflate" : this.pick(roles);
    const chains = only !== undefined ? 1 : this.pick([1, 1, 1, 1, 2, 3, 8]);
    if (ringsOk) {
      for (let c = 0; c < chains; c++) {
        const head = this.chain(q, role, peek, ops);
        ops.push({ t: "m", a: q.avail + 4 + 2 * (q.availIdx % q.size), h: toHex(u16(head)) });
        q.availIdx = (q.availIdx + 1) & 0xffff;
      }
      let idx = q.availIdx;
      if (this.chance(0.01)) idx = (idx + q.size + 1 + this.int(1000)) & 0xffff;
      ops.push({ t: "m", a: q.avail + 2, h: toHex(u16(idx)) });
      if (idx !== q.availIdx) q.availIdx = idx;
    }
    const k = this.r();
    if (k < 0.96) ops.push(this.w(NOTIFY + 2 * qi, 2, qi));
    else if (k < 0.98) ops.push(this.w(NOTIFY + 2 * this.int(32), this.pick([1, 2, 4] as const), qi));
    return ops;
  }

  /** Write one chain's descriptors (direct, indirect or malformed); returns the head to publish. */
  private chain(q: DriverQueue, role: string, peek: Rig, ops: Op[]): number {
    const bufs = this.buffers(role, peek, ops);
    if (bufs.length === 0) bufs.push([this.alloc(4), 4, false]);
    const take = () => { const d = q.nextDesc; q.nextDesc = (q.nextDesc + 1) % q.size; return d; };
    const malform = this.chance(0.08) ? this.int(9) : -1;
    const indirectAllowed = (this.accepted >> 28n) & 1n;
    if (malform < 0 && bufs.length > 1 && this.chance(indirectAllowed ? 0.25 : 0.02)) {
      const table = this.alloc(16 * bufs.length);
      bufs.forEach(([a, l, wr], i) => ops.push(this.desc(q, table, i, a, l, (wr ? F_WRITE : 0) | (i + 1 < bufs.length ? F_NEXT : 0), i + 1 < bufs.length ? i + 1 : 0)));
      const head = take();
      ops.push(this.desc(q, q.desc, head, table, 16 * bufs.length, F_INDIRECT, 0));
      return head;
    }
    const idx = bufs.map(() => take());
    bufs.forEach(([a, l, wr], i) => {
      let addr = a, len = l, flags = (wr ? F_WRITE : 0) | (i + 1 < bufs.length ? F_NEXT : 0), next = i + 1 < bufs.length ? idx[i + 1]! : 0;
      if (i === bufs.length - 1) {
        switch (malform) {
          case 0: flags |= F_NEXT; next = idx[0]!; break; // loop
          case 1: flags |= F_NEXT; next = q.size + this.int(100); break;
          case 2: len = 0; break;
          case 3: addr = this.ram - 2; len = 8; break;
          case 4: addr = 2 ** 32 + a; break;
          case 5: len = 0xffffffff; break;
          case 6: flags = F_INDIRECT | (this.chance(0.5) ? F_NEXT : 0); len = this.pick([0, 15, 16, 17, 2 ** 20]); break;
          case 7: flags = F_INDIRECT; addr = q.desc; len = 16 * q.size; break; // indirect table = the ring (nested/loops)
          default: break;
        }
      }
      if (malform === 8 && i === 0 && bufs.length > 1) flags |= F_WRITE;
      ops.push(this.desc(q, q.desc, idx[i]!, addr, len, flags, next));
    });
    return this.chance(0.01) ? q.size + this.int(10) : idx[0]!;
  }
}

function u16(x: number): Uint8Array {
  return new Uint8Array([x & 0xff, (x >> 8) & 0xff]);
}

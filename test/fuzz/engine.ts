/**
 * One fuzz episode: two devices built alike, one on the wasm hot path and one on the JS reference, driven in
 * lock-step by the same operations, with every invariant checked after every request:
 *  - no exception out of the device (BAR accesses never throw; host calls throw only RangeError/TypeError);
 *  - canaries intact before and after guest RAM and around every scratch allocation;
 *  - every changed guest byte covered by a dirty() call of that request (JIT coherence), no dirty() outside RAM;
 *  - changed bytes inside the model's allowed set, equal to its prediction where it has one; the diagnostics
 *    the model requires present, none it rules out, each with a conformance rule and its required details;
 *  - work per request (the hot path's work counter) under WORK_BOUND;
 *  - both devices equal after each request: guest RAM, return values, diagnostics, full saved state, IRQ line;
 *  - save + restore always accepted; a hostile restore either accepted or refused with the one defined
 *    error (`StateError`), a refused one leaving the device exactly as before;
 *  - timers the device asks for are real timers (1 ms .. 2^31-1 ms).
 */
import { CONFORMANCE } from "../../src/balloon/diagnostics.js";
import type { BalloonDiagnostic } from "../../src/balloon/diagnostics.js";
import { emptyExpect, expectNotify, PAGE, type Expect, type Pre } from "./model.js";
import { mutateState, type Mutated } from "./mutate.js";
import { fromHex, isRequest, type Op } from "./ops.js";
import { Rig, type RigConfig, type SavedState } from "./rig.js";
import { rng } from "../../devkit/rng.js";
import { balloonOnlyFile } from "../support/v86-state.js";
import { checkBalloonSnapshot } from "../../src/host/snapshot.js";

export interface Finding {
  /** Class of defect (the minimiser keeps a sequence that still shows this class). */
  cls: string;
  message: string;
  /** Index of the operation that showed it. */
  op: number;
}

/**
 * Bound on the hot-path work one request may cause, in bytes of guest RAM touched (see countingHotPath):
 * four times guest RAM plus 24 MiB (a few milliseconds). Linux needs at most one 256-PFN request (about
 * 1 MiB) or one report of RAM-bounded ranges per notify; a hostile driver must not make it do more.
 */
export function workBound(ram: number): number {
  return 4 * ram + (24 << 20);
}

/** The error a refused restore must throw (by name: it is defined by the device, not by the fuzzer). */
export const STATE_ERROR = "StateError";

const MAX_TIMER_MS = 2 ** 31 - 1;

interface Outcome { ret?: number; threw?: string; refused?: string; note?: string }

export class Session {
  findings: Finding[] = [];
  requests = 0;
  /** Notifies the model predicted byte for byte / could only bound. */
  exact = 0;
  inexact = 0;
  restoreMutations = 0;
  /** The state the last hostile restore offered the wasm device (to make a `mut` op concrete). */
  lastRestored: SavedState | null = null;
  /** Times the JS device was replaced by one restored from its snapshot (a later divergence may be the restore's). */
  freshRestores = 0;
  private shadow: Uint8Array;
  private opIndex = 0;

  private constructor(readonly config: RigConfig, public a: Rig, public b: Rig) {
    this.shadow = a.mem.bytes().slice();
  }

  static async create(config: RigConfig): Promise<Session> {
    const a = await Rig.create(config, "wasm");
    const b = await Rig.create({ ...config, base: config.base + 8 }, "js");
    return new Session(config, a, b);
  }

  private find(cls: string, message: string): void {
    this.findings.push({ cls, message, op: this.opIndex });
  }

  /** Run one operation on both devices and check every invariant. */
  async apply(op: Op): Promise<void> {
    const { a, b } = this;
    if (op.t === "m" || op.t === "f") {
      for (const m of [a.mem, b.mem]) {
        if (op.t === "m") m.bytes().set(fromHex(op.h), op.a);
        else m.bytes().fill(op.b, op.a, op.a + op.n);
      }
      if (op.t === "m") this.shadow.set(fromHex(op.h), op.a);
      else this.shadow.fill(op.b, op.a, op.a + op.n);
      this.opIndex++;
      return;
    }
    this.requests++;
    const expect = this.expectation(op);
    a.work.work = b.work.work = 0;
    a.mem.takeDirty();
    b.mem.takeDirty();
    // A fresh restore replaces the JS device only, so the original (wasm) one shows anything the snapshot
    // lost. With chains pending, the restored device takes them at once: then both are replaced.
    const fresh = op.t === "sr" && op.fresh;
    // So is the delayUsedMs fault: its held buffers are dropped by a restore, as documented.
    const both = fresh && (a.pendingChains() > 0 || b.pendingChains() > 0 || !!this.config.faults.delayUsedMs);
    const oa = fresh ? {} : this.run(a, op);
    if (fresh) {
      if (both) this.a = (await this.freshRestore(a)) ?? a;
      this.b = (await this.freshRestore(b)) ?? b;
    }
    const ob = fresh ? {} : this.run(b, op);
    this.check(op, expect, oa, ob);
    this.opIndex++;
  }

  // ---- executing ------------------------------------------------------------------------------------

  private run(r: Rig, op: Op): Outcome {
    try {
      switch (op.t) {
        case "w": r.barWrite(op.o, op.w, op.v); return {};
        case "r": return { ret: r.barRead(op.o, op.w) };
        case "h": return this.host(r, op.c, op.a);
        case "clk": r.clock.advance(op.ms); return {};
        case "sr": return this.roundTrip(r);
        case "mut": return this.hostileRestore(r, mutateState(r.save(), rng(op.s)));
        case "restore": return this.hostileRestore(r, { state: { json: op.j, bitmap: fromHex(op.b) }, what: ["as recorded"] });
        default: return {};
      }
    } catch (e) {
      return { threw: describe(e) };
    }
  }

  private host(r: Rig, c: string, arg = 0): Outcome {
    try {
      switch (c) {
        case "setTarget": return { ret: r.host.setTarget(arg) };
        case "setStatsInterval": r.host.setStatsInterval(arg); return {};
        case "startHinting": return { ret: r.host.startHinting() ?? -1 };
        case "stopHinting": r.host.stopHinting({ release: arg % 2 === 0 }); return {};
        case "finishHinting": r.host.finishHinting(); return {};
        case "requestStats": r.host.requestStats(arg).catch(() => {}); return {};
      }
    } catch (e) {
      // The host API may refuse a nonsense argument with a RangeError/TypeError; nothing else may escape.
      if (e instanceof RangeError || e instanceof TypeError) return { refused: e.name };
      throw e;
    }
    return {};
  }

  private roundTrip(r: Rig): Outcome {
    const pending = r.pendingChains() > 0;
    const before = r.fingerprint();
    const s = r.save();
    try {
      r.restore(s);
    } catch (e) {
      return { note: `a state just saved was refused: ${describe(e)}` };
    }
    const after = r.fingerprint();
    return before === after || pending ? {} : { note: `restore(save()) changed the device: ${firstDiff(before, after)}` };
  }

  private hostileRestore(r: Rig, { state, what }: Mutated): Outcome {
    const gate = r === this.a ? this.fileGate(state) : null;
    if (r === this.a) this.lastRestored = state;
    const before = r.fingerprint();
    try {
      r.restore(state);
    } catch (e) {
      const after = r.fingerprint();
      const name = e instanceof Error ? e.name : typeof e;
      const problems: string[] = [];
      if (name !== STATE_ERROR) problems.push(`refusal threw ${describe(e)}, not a ${STATE_ERROR}`);
      if (after !== before) problems.push(`a refused restore changed the device: ${firstDiff(before, after)}`);
      if (gate === "accepted") problems.push(`checkBalloonSnapshot accepts as a v86 file the state this restore refused (${describe(e)})`);
      else if (gate !== null && gate !== STATE_ERROR) problems.push(`checkBalloonSnapshot threw ${gate}, not a ${STATE_ERROR}`);
      return { refused: name, note: problems.length ? `${problems.join("; ")} [mutations: ${what.join(", ")}]` : undefined };
    }
    if (gate !== null && gate !== "accepted") return { note: `the file gate for URL states refuses what a restore accepts (checkBalloonSnapshot: ${gate}) [mutations: ${what.join(", ")}]` };
    const unreachable = unreachableState(r);
    if (unreachable) return { note: `restore accepted a state the registers cannot reach: ${unreachable} [mutations: ${what.join(", ")}]` };
    // An accepted state must itself save and restore.
    const rt = this.roundTrip(r);
    return rt.note ? { note: `after an accepted hostile restore: ${rt.note} [mutations: ${what.join(", ")}]` } : {};
  }

  /**
   * What the gate for states loaded from a URL (the embed's `state=`: checkBalloonSnapshot on a v86 file)
   * says of the same state: "accepted", or the name of what it threw. It must agree with a restore.
   */
  private fileGate(state: SavedState): string {
    const c = this.config;
    try {
      checkBalloonSnapshot(balloonOnlyFile([state.json, state.bitmap]), { memoryBytes: c.ram, features: c.offer, faults: c.faults });
      return "accepted";
    } catch (e) {
      return e instanceof Error ? (e.name === STATE_ERROR ? STATE_ERROR : describe(e)) : String(e);
    }
  }

  /** A freshly built device restored from `old`'s saved state (RAM copied as a VM restore does), or null if refused. */
  private async freshRestore(old: Rig): Promise<Rig | null> {
    const pending = old.pendingChains() > 0;
    const s = old.save();
    const fresh = await Rig.create(old.config, old === this.a ? "wasm" : "js");
    fresh.mem.bytes().set(old.mem.bytes());
    fresh.clock.t = old.clock.t;
    // The interrupt line's level is the PIC's state, restored by the VM with it.
    fresh.pci.irq = old.pci.irq;
    try {
      fresh.restore(s);
    } catch (e) {
      this.find("snapshot-unrestorable", `a fresh device refused a state just saved: ${describe(e)}`);
      return null;
    }
    const f1 = old.fingerprint(), f2 = fresh.fingerprint();
    if (f1 !== f2 && !pending) this.find("restore-not-faithful", `fresh device after restore differs: ${firstDiff(f1, f2)}`);
    this.freshRestores++;
    // Its dirty log (what the restore wrote: pending chains) is checked like any request's.
    return fresh;
  }

  // ---- the model's expectation ------------------------------------------------------------------------

  private pre(): Pre {
    const r = this.a;
    const t = r.transport.saveState();
    return {
      status: t.status,
      queueSelect: t.queueSelect,
      driverFeatureSelect: t.driverFeatureSelect,
      negotiated: BigInt(t.negotiated),
      numQueues: r.transport.numQueues,
      queues: t.queues.map((q) => ({ ...q })),
      live: r.device.live,
      poisonVal: r.device.poisonValue,
      inflated: (p) => r.device.isInflated(p),
      statsHeld: () => r.device.saveState().stats.heldHead,
    };
  }

  private expectation(op: Op): Expect {
    const ram = this.config.ram;
    if (op.t === "w") {
      if (op.o >= 0x80 && op.o < 0xc0) {
        return expectNotify({ config: this.config, pre: this.pre(), ram: this.a.mem.bytes() }, op.o, op.w, op.v);
      }
      return expectRegisterWrite(this.pre(), op.o, op.w, op.v, ram);
    }
    const e = emptyExpect();
    // Reads change nothing in guest memory; how the device names an odd read is its business.
    e.may = null;
    if (op.t === "r") return e;
    // Host calls may complete held buffers (stats): used rings only. Clock steps may also run the rest of a
    // notify that ran out of its work budget, and a restore takes up chains queued before the snapshot.
    for (const q of this.pre().queues) if (q.enabled) e.allowed.push([q.deviceAddr, q.deviceAddr + 6 + 8 * q.size]);
    if (op.t !== "h") e.allowed = [[0, ram]];
    return e;
  }

  // ---- checks -----------------------------------------------------------------------------------------

  private check(op: Op, e: Expect, oa: Outcome, ob: Outcome): void {
    const { a, b } = this;
    const ram = this.config.ram;
    if (oa.threw) this.find(`exception:${op.t}`, `${JSON.stringify(op)} threw out of the device: ${oa.threw}`);
    if (oa.note) this.find(op.t === "mut" || op.t === "restore" ? classOfRestoreNote(oa.note) : "snapshot-round-trip", oa.note);
    if (op.t === "r" && oa.ret !== undefined) {
      const max = op.w === 4 ? 0xffffffff : (1 << (8 * op.w)) - 1;
      if (!Number.isInteger(oa.ret) || oa.ret < 0 || oa.ret > max) this.find("bar-read-value", `read of ${op.w} bytes at 0x${op.o.toString(16)} returned ${oa.ret}`);
    }
    const damage = a.mem.guardDamage() ?? b.mem.guardDamage();
    if (damage) this.find("canary", `${JSON.stringify(op)}: ${damage}`);

    // dirty coverage and the allowed set, against the RAM as it was before this request
    const dirty = a.mem.takeDirty();
    const bDirty = b.mem.takeDirty();
    for (const [s, t] of [...dirty, ...bDirty]) {
      if (!(Number.isInteger(s) && Number.isInteger(t) && s >= 0 && t <= ram && s < t)) { this.find("dirty-outside-ram", `dirty(${s}, ${t})`); break; }
    }
    const now = a.mem.bytes();
    const changed = changedRanges(this.shadow, now);
    if (changed.length) {
      const undirtied = firstUncoveredOf(dirty, changed);
      if (undirtied >= 0) this.find("undirtied-write", `${JSON.stringify(op)} changed guest byte 0x${undirtied.toString(16)} without dirtying it`);
      const outside = firstUncoveredOf(e.allowed, changed);
      if (outside >= 0) this.find("write-outside-model", `${JSON.stringify(op)} changed guest byte 0x${outside.toString(16)}, which this request may not write`);
    }
    if (e.predicted) {
      for (const [s, t] of e.loose) e.predicted.set(now.subarray(s, t), s);
      const at = firstDifference(e.predicted, now);
      if (at >= 0) this.find("model-mismatch", `${JSON.stringify(op)}: guest byte 0x${at.toString(16)} is 0x${now[at]!.toString(16)}, the model expects 0x${e.predicted[at]!.toString(16)}`);
      this.exact++;
    } else if (op.t === "w" && op.o >= 0x80 && op.o < 0xc0) {
      if (e.allowed.length) this.inexact++;
      else this.exact++;
    }
    for (const [s, t] of changed) this.shadow.set(now.subarray(s, t), s);

    // diagnostics
    const da = a.takeDiags(), db = b.takeDiags();
    this.checkDiagnostics(op, e, da);
    if (!oa.note || (op.t !== "mut" && op.t !== "restore")) {
      const ka = da.map((d) => `${d.kind}: ${d.message}`).join("\n"), kb = db.map((d) => `${d.kind}: ${d.message}`).join("\n");
      if (ka !== kb) this.find(this.freshRestores ? "lockstep:diagnostics-after-fresh-restore" : "lockstep:diagnostics", `${JSON.stringify(op)}: wasm and JS devices diagnosed differently:\n${firstDiff(ka, kb)}`);
    }

    // work
    const bound = workBound(ram);
    if (a.work.work > bound || b.work.work > bound) this.find("work-bound", `${JSON.stringify(op)} made the device do ${Math.max(a.work.work, b.work.work)} bytes of work (bound ${bound})`);

    // lock-step
    if (oa.ret !== ob.ret || oa.threw !== ob.threw || oa.refused !== ob.refused) {
      this.find("lockstep:outcome", `${JSON.stringify(op)}: wasm ${JSON.stringify(oa)} vs JS ${JSON.stringify(ob)}`);
    }
    if (Buffer.compare(a.mem.bytes(), b.mem.bytes()) !== 0) {
      const at = firstDifference(a.mem.bytes(), b.mem.bytes());
      this.find(this.freshRestores ? "lockstep:ram-after-fresh-restore" : "lockstep:ram", `${JSON.stringify(op)}: guest byte 0x${at.toString(16)} differs (wasm 0x${a.mem.bytes()[at]!.toString(16)}, JS 0x${b.mem.bytes()[at]!.toString(16)})`);
      b.mem.bytes().set(a.mem.bytes());
    }
    // The whole saved state every 16 requests and after every restore; registers and counters always.
    const full = op.t === "sr" || op.t === "mut" || op.t === "restore" || this.requests % 16 === 0;
    const fa = full ? a.fingerprint() : a.quickFingerprint(), fb = full ? b.fingerprint() : b.quickFingerprint();
    if (fa !== fb) this.find(this.freshRestores ? "lockstep:state-after-fresh-restore" : "lockstep:state", `${JSON.stringify(op)}: device states differ: ${firstDiff(fa, fb)}`);

    for (const ms of a.clock.intervals.splice(0)) {
      if (!(ms >= 1 && ms <= MAX_TIMER_MS)) this.find("timer-range", `${JSON.stringify(op)}: the device asked for a ${ms} ms interval (a timer takes 1 .. 2^31-1 ms)`);
    }
    b.clock.intervals.length = 0;
  }

  private checkDiagnostics(op: Op, e: Expect, ds: BalloonDiagnostic[]): void {
    const kinds = new Set(ds.map((d) => d.kind as string));
    for (const d of ds) {
      const rule = (CONFORMANCE as Record<string, unknown>)[d.kind];
      if (!rule) this.find(`no-conformance-rule:${d.kind}`, `diagnostic ${d.kind} has no entry (severity, spec rule) in CONFORMANCE`);
    }
    for (const k of e.must) if (!kinds.has(k)) this.find(`diagnostic-missing:${k}`, `${JSON.stringify(op)} should be diagnosed as ${k}; got [${[...kinds].join(", ")}]`);
    // A mistake the model knows no kind for may be named as the device likes (any kind then counts).
    if (e.may && !e.mustAny.length) {
      for (const k of kinds) if (!e.must.has(k) && !e.may.has(k)) this.find(`diagnostic-unexpected:${k}`, `${JSON.stringify(op)} was diagnosed ${k}, which the model rules out (${ds.find((d) => d.kind === k)!.message})`);
    }
    if (e.mustAny.length && ![...kinds].some((k) => !e.must.has(k))) {
      this.find(`diagnostic-missing:${e.mustAny[0]!.key}`, `${JSON.stringify(op)}: no diagnostic for: ${e.mustAny.map((m) => m.reason).join("; ")}`);
    }
    // The i-th expected detail of a kind belongs to the i-th diagnostic of that kind (chains in order).
    const nth = new Map<string, number>();
    for (const want of e.details) {
      const i = nth.get(want.kind) ?? 0;
      nth.set(want.kind, i + 1);
      const d = ds.filter((x) => x.kind === want.kind)[i];
      if (d && d.detail[want.field] !== want.value) this.find(`diagnostic-detail:${want.kind}.${want.field}`, `${JSON.stringify(op)}: ${want.kind} says ${want.field} = ${String(d.detail[want.field])}, the driver wrote ${String(want.value)}`);
    }
    if (op.t === "w" && !(op.o >= 0x80 && op.o < 0xc0) && e.may) {
      const counts = new Map<string, number>();
      for (const d of ds) counts.set(d.kind, (counts.get(d.kind) ?? 0) + 1);
      for (const [k, n] of counts) if (n > 1) this.find(`diagnostic-repeated:${k}`, `${JSON.stringify(op)}: one driver mistake diagnosed ${n} times as ${k}`);
    }
  }

  /** Record whether a state saved now restores into a fresh device (the end-of-episode check). */
  async finalChecks(): Promise<void> {
    this.opIndex++;
    const fresh = await Rig.create(this.config, "wasm");
    fresh.mem.bytes().set(this.a.mem.bytes());
    try {
      fresh.restore(this.a.save());
    } catch (e) {
      this.find("snapshot-unrestorable", `the device's own state is refused by a fresh device: ${describe(e)}`);
    }
  }
}

// ---- register-write expectations ------------------------------------------------------------------

/** Common configuration fields (virtio 1.2 §4.1.4.3): offset, size, writable. */
const COMMON: ReadonlyArray<[number, number, boolean, string]> = [
  [0x00, 4, true, "device_feature_select"], [0x04, 4, false, "device_feature"], [0x08, 4, true, "driver_feature_select"],
  [0x0c, 4, true, "driver_feature"], [0x10, 2, true, "config_msix_vector"], [0x12, 2, false, "num_queues"],
  [0x14, 1, true, "device_status"], [0x15, 1, false, "config_generation"], [0x16, 2, true, "queue_select"],
  [0x18, 2, true, "queue_size"], [0x1a, 2, true, "queue_msix_vector"], [0x1c, 2, true, "queue_enable"],
  [0x1e, 2, false, "queue_notify_off"], [0x20, 8, true, "queue_desc"], [0x28, 8, true, "queue_driver"],
  [0x30, 8, true, "queue_device"], [0x38, 2, false, "queue_notify_data"], [0x3a, 2, false, "queue_reset"],
];

function fieldsCovered(o: number, w: number): Array<[number, number, boolean, string]> {
  return COMMON.filter(([fo, fs]) => o < fo + fs && fo < o + w);
}

/** What a write to a register (not a notify) must and may diagnose, and what guest memory it may change. */
export function expectRegisterWrite(pre: Pre, o: number, w: number, v: number, ram: number): Expect {
  const e = emptyExpect();
  const may = e.may!;
  for (const k of ["field-access-not-natural", "features-refused", "features-not-offered", "queue-enable-refused", "queue-too-small", "poison-val-not-byte-pattern", "actual-above-ram", "actual-above-inflated", "actual-above-target", "poison-val-changed-while-live", "poison-val-without-feature", "queue-enabled-past-features"]) may.add(k);
  const end = o + w;
  if (o < 0x3c) {
    const fields = fieldsCovered(o, w);
    if (end > 0x3c || fields.length !== 1) {
      e.mustAny.push({ key: "write-straddles-fields", reason: `write of ${w} bytes at 0x${o.toString(16)} straddles fields or unused space` });
      e.may = null;
      return e;
    }
    const [fo, fs, writable, name] = fields[0]!;
    if (!writable) { e.must.add("write-to-read-only-field"); return e; }
    // 4.1.3.1: each field with its natural width; a 64-bit field as two 32-bit halves.
    const natural = fs === 8 ? w === 4 && (o - fo) % 4 === 0 : w === fs && o === fo;
    if (!natural) {
      // What a partial write does to the field is the device's choice (merge or ignore): only the diagnostic is required.
      e.mustAny.push({ key: "field-access-not-natural", reason: `${w}-byte write at 0x${o.toString(16)} into the ${fs}-byte field ${name}` });
      e.may = null;
      if (name === "device_status") e.allowed.push([0, ram]);
      return e;
    }
    const sel = selected(pre);
    switch (name) {
      case "device_status": {
        const s = v & 0xff;
        if (s === 0) return e;
        if (pre.status & ~s & ~64) e.must.add("status-bits-cleared");
        if (s & 0x30) e.mustAny.push({ key: "status-reserved-bits", reason: `status 0x${s.toString(16)} sets reserved bits` });
        if (s & 64 && !(pre.status & 64)) e.mustAny.push({ key: "driver-set-needs-reset", reason: "the driver set DEVICE_NEEDS_RESET" });
        if (s & 8 && !(pre.status & 8) && ((pre.status | s) & 3) !== 3) e.mustAny.push({ key: "features-ok-without-driver", reason: "FEATURES_OK without ACKNOWLEDGE and DRIVER" });
        if (s & 4 && !(pre.status & 4) && !((pre.status | s) & 8)) e.mustAny.push({ key: "driver-ok-without-features-ok", reason: "DRIVER_OK without FEATURES_OK" });
        if ((s | pre.status) & 4) {
          // The device may go live now and take notifications made before: any queue may be worked on.
          e.allowed.push([0, ram]);
          e.may = null;
        }
        return e;
      }
      case "queue_enable":
        if (!sel) { e.must.add("queue-select-out-of-range"); return e; }
        if ((v & 0xffff) === 0) e.must.add("queue-disable-not-supported");
        else if ((v & 0xffff) !== 1) e.mustAny.push({ key: "queue-enable-value", reason: `queue_enable written with ${v & 0xffff}` });
        return e;
      case "driver_feature":
        if (pre.driverFeatureSelect > 1) e.must.add("feature-select-out-of-range");
        else if (pre.status & 8) e.must.add("features-changed-after-features-ok");
        return e;
      case "queue_size": case "queue_desc": case "queue_driver": case "queue_device":
        if (!sel) { e.must.add("queue-select-out-of-range"); return e; }
        if (sel.enabled) { e.must.add("queue-configured-while-enabled"); return e; }
        may.add("queue-address-too-large");
        if (fs === 8 && o - fo === 4 && (v >>> 0) >= 0x200000) e.mustAny.push({ key: "queue-address-above-2^53", reason: `${name} set to an address >= 2^53` });
        return e;
      default:
        return e;
    }
  }
  if (o >= 0x40 && o < 0x44) {
    if (end > 0x44) { e.mustAny.push({ key: "write-straddles-fields", reason: "write straddles the ISR field" }); e.may = null; return e; }
    e.must.add("write-to-read-only-field");
    return e;
  }
  if (o >= 0x60 && o < 0x80) {
    const rel = o - 0x60;
    if (rel + w > 16) { e.must.add("device-config-out-of-range"); return e; }
    if ((rel >> 2) !== ((rel + w - 1) >> 2)) {
      e.mustAny.push({ key: "write-straddles-fields", reason: "device config write straddles two fields" });
      e.may = null;
      return e;
    }
    const field = rel >> 2;
    if (field === 0 || field === 2) e.must.add("write-to-read-only-field");
    return e;
  }
  e.mustAny.push({ key: "write-to-unused-bar-range", reason: `write of ${w} bytes at 0x${o.toString(16)}, a BAR range no structure uses` });
  e.may = null;
  return e;
}

function selected(pre: Pre): Pre["queues"][number] | undefined {
  return pre.queueSelect < pre.numQueues ? pre.queues[pre.queueSelect] : undefined;
}

// ---- helpers ------------------------------------------------------------------------------------------

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function classOfRestoreNote(note: string): string {
  if (note.includes("changed the device")) return "restore-refused-changed-state";
  if (note.startsWith("refusal threw")) return "restore-wrong-error";
  if (note.includes("checkBalloonSnapshot") || note.startsWith("the file gate")) return "url-state-gate-differs";
  if (note.startsWith("restore accepted")) return `restore-accepted-unreachable:${note.slice(note.indexOf(":") + 2).split(" ")[0]}`;
  return "restore-accepted-unrestorable";
}

/** A reachable-state check of an accepted restore, or null. */
function unreachableState(r: Rig): string | null {
  const t = r.transport.saveState();
  const d = r.device.saveState();
  const offered = BigInt(d.offered) | (1n << 28n);
  const neg = BigInt(t.negotiated);
  if (neg & ~offered) return "negotiated-not-offered";
  if (d.active && BigInt(d.negotiated) !== (neg & ~(1n << 28n))) return "device-and-transport-features-differ";
  if ((neg >> 6n) & 1n && !((neg >> 5n) & 1n)) return "bit6-without-bit5";
  if (!Number.isInteger(t.status) || t.status < 0 || t.status > 255) return "status";
  if (!Number.isInteger(t.queueSelect) || t.queueSelect < 0 || t.queueSelect > 0xffff) return "queue-select";
  for (const q of t.queues) {
    if (q.enabled && (q.size < 1 || q.size > 256 || (q.size & (q.size - 1)) !== 0)) return "queue-size";
  }
  if (d.stats.heldHead !== null) {
    const statsIndex = 2;
    const sq = t.queues[statsIndex];
    if (!sq || d.stats.heldHead >= sq.size) return "held-head";
  }
  const iv = d.stats.intervalSeconds;
  if (iv !== 0 && !(iv * 1000 >= 1 && iv * 1000 <= MAX_TIMER_MS)) return "stats-interval";
  const pages = r.device.ramPages;
  const bm = d.inflatedBitmap;
  if (pages % 8 && bm.length && bm[bm.length - 1]! >> (pages % 8)) return "bitmap-padding";
  return null;
}

/** Ranges [s, t) where two equal-length byte arrays differ, found page by page. */
function changedRanges(before: Uint8Array, after: Uint8Array): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (Buffer.compare(before, after) === 0) return out;
  for (let p = 0; p < after.length; p += PAGE) {
    const e = Math.min(p + PAGE, after.length);
    if (Buffer.compare(before.subarray(p, e), after.subarray(p, e)) === 0) continue;
    let i = p;
    while (i < e) {
      while (i < e && before[i] === after[i]) i++;
      if (i >= e) break;
      const s = i;
      while (i < e && before[i] !== after[i]) i++;
      const last = out[out.length - 1];
      if (last && last[1] === s) last[1] = i;
      else out.push([s, i]);
    }
  }
  return out;
}

function firstDifference(x: Uint8Array, y: Uint8Array): number {
  if (Buffer.compare(x, y) === 0) return -1;
  for (let p = 0; p < x.length; p += PAGE) {
    const e = Math.min(p + PAGE, x.length);
    if (Buffer.compare(x.subarray(p, e), y.subarray(p, e)) === 0) continue;
    for (let i = p; i < e; i++) if (x[i] !== y[i]) return i;
  }
  return -1;
}

/** Ranges sorted and merged (touching ones joined). */
function merged(ranges: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** First byte of each changed range not covered by `ranges`, or -1 if all are covered. */
function firstUncoveredOf(ranges: ReadonlyArray<readonly [number, number]>, changed: ReadonlyArray<readonly [number, number]>): number {
  const m = merged(ranges);
  for (const [s, t] of changed) {
    const r = m.find(([a, b]) => a <= s && s < b);
    if (!r) return s;
    if (r[1] < t) return r[1];
  }
  return -1;
}

function firstDiff(x: string, y: string): string {
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return `at ${i}: "${x.slice(Math.max(0, i - 60), i + 60)}" vs "${y.slice(Math.max(0, i - 60), i + 60)}"`;
}

export { isRequest, type SavedState };

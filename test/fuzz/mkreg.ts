import { readFileSync, writeFileSync } from "node:fs";
import { concretize, formatRepro, replay, type Repro } from "./run.js";
import type { Op } from "./ops.js";
import type { RigConfig } from "./rig.js";

const out = "test/fuzz/regressions/";
const base: RigConfig = { ram: 256 << 10, base: 4096, offer: {}, faults: {}, zeroFreedPages: true, hintAutoDone: true, initialTarget: 0, fill: 0x5a };
const hex32 = (xs: number[]) => Buffer.from(new Uint32Array(xs).buffer).toString("hex");
const desc = (addr: number, len: number, flags = 0, next = 0) => { const b = Buffer.alloc(16); b.writeUInt32LE(addr % 2 ** 32, 0); b.writeUInt32LE(Math.floor(addr / 2 ** 32), 4); b.writeUInt32LE(len >>> 0, 8); b.writeUInt16LE(flags, 12); b.writeUInt16LE(next, 14); return b.toString("hex"); };
const u16 = (x: number) => Buffer.from([x & 0xff, x >> 8]).toString("hex");
/** Negotiate `lo` (feature bits 0..31) + VERSION_1, queues 0..n-1 (size 8) at 0x2000 + 0x1000*i, DRIVER_OK. */
function live(lo: number, queues: number, driverOk = true): Op[] {
  const ops: Op[] = [{ t: "w", o: 0x14, w: 1, v: 1 }, { t: "w", o: 0x14, w: 1, v: 3 }, { t: "w", o: 0x08, w: 4, v: 0 }, { t: "w", o: 0x0c, w: 4, v: lo },
    { t: "w", o: 0x08, w: 4, v: 1 }, { t: "w", o: 0x0c, w: 4, v: 1 }, { t: "w", o: 0x14, w: 1, v: 0xb }];
  for (let i = 0; i < queues; i++) {
    const at = 0x2000 + 0x1000 * i;
    ops.push({ t: "w", o: 0x16, w: 2, v: i }, { t: "w", o: 0x18, w: 2, v: 8 }, { t: "w", o: 0x20, w: 4, v: at }, { t: "w", o: 0x24, w: 4, v: 0 },
      { t: "w", o: 0x28, w: 4, v: at + 0x80 }, { t: "w", o: 0x2c, w: 4, v: 0 }, { t: "w", o: 0x30, w: 4, v: at + 0x100 }, { t: "w", o: 0x34, w: 4, v: 0 },
      { t: "f", a: at, n: 0x200, b: 0 }, { t: "w", o: 0x1c, w: 2, v: 1 });
  }
  if (driverOk) ops.push({ t: "w", o: 0x14, w: 1, v: 0xf });
  return ops;
}
/** One chain on queue q: descriptors (index 0..), avail ring entry 0 = head 0, avail idx 1, notify. */
function chain(q: number, descs: string[], notify = true): Op[] {
  const at = 0x2000 + 0x1000 * q;
  const ops: Op[] = descs.map((d, i) => ({ t: "m", a: at + 16 * i, h: d }));
  ops.push({ t: "m", a: at + 0x80 + 2, h: u16(1) });
  if (notify) ops.push({ t: "w", o: 0x80 + 2 * q, w: 2, v: q });
  return ops;
}
const cases: Array<Repro & { file: string }> = [];
const add = (file: string, title: string, cls: string, config: RigConfig, ops: Op[]) => cases.push({ file, title, cls, message: "", config, ops });

add("work-inflate-list-as-long-as-ram", "issue 14 item 1: one inflate descriptor {addr 0, len RAM} (every PFN 0) must not cost more than the work bound", "work-bound",
  { ...base, fill: 0 }, [...live(0, 2), ...chain(0, [desc(0, 256 << 10)])]);
add("work-report-overlapping-ranges", "issue 14 item 1: a report of 8 overlapping RAM-sized ranges must not cost 8 x RAM of fill, and is diagnosed", "work-bound",
  base, [...live(1 << 5, 3), ...chain(2, Array.from({ length: 8 }, (_, i) => desc(0, 256 << 10, 2 | (i < 7 ? 1 : 0), i + 1)))]);
add("queue-desc-high-half-disabled-queue", "issue 14 item 2: queue_desc high half 0x01000000 on a queue that is not enabled must not make the snapshot unrestorable", "snapshot-unrestorable",
  base, [...live(0, 1), { t: "w", o: 0x16, w: 2, v: 1 }, { t: "w", o: 0x24, w: 4, v: 0x01000000 }, { t: "sr", fresh: true }]);
add("early-stats-notify-survives-snapshot", "issue 14 item 4: a stats notify made before DRIVER_OK, saved and restored, is still delivered at DRIVER_OK", "lockstep:state-after-fresh-restore",
  base, [...live(1 << 1, 3, false), ...chain(2, [desc(0x6000, 10)]), { t: "sr", fresh: true }, { t: "w", o: 0x14, w: 1, v: 0xf }, { t: "r", o: 0x14, w: 1 }]);
add("pfn-out-of-range-names-the-pfn-sent", "issue 14 item 5: a PFN list inside a page it inflates: pfn-out-of-range names the PFN the driver wrote", "diagnostic-detail:pfn-out-of-range.firstBadPfn",
  { ...base, fill: 0x11 }, [...live(0, 2), { t: "m", a: 0x28000, h: hex32([0x28, 0x29, 0x12345]) }, ...chain(0, [desc(0x28000, 12)])]);
{
  const { Session } = await import("./engine.js");
  const s = await Session.create(base);
  for (const op of live(0, 2)) await s.apply(op);
  const saved = s.a.save();
  const ops: Op[] = [...live(0, 2)];
  for (const [path, value] of [["status", 1.5], ["queueSelect", 0.5], ["status", null], ["queueSelect", "1e3"], ["negotiated", "1e3"]] as const) {
    const j = JSON.parse(saved.json);
    j.transport[path] = value;
    ops.push({ t: "restore", j: JSON.stringify(j), b: Buffer.from(saved.bitmap).toString("hex") }, { t: "r", o: 0x14, w: 1 }, { t: "r", o: 0x16, w: 2 }, { t: "w", o: 0x16, w: 2, v: 1 });
  }
  ops.push({ t: "w", o: 0x14, w: 1, v: 0 });
  add("hostile-register-values-in-state", "issue 14 item 3: status 1.5, queueSelect 0.5, null, \"1e3\" in a saved state are refused with StateError, change nothing, and the registers keep working", "restore-wrong-error", base, ops);
}
add("hostile-restore-then-registers", "issue 14 item 3: after a hostile restore (refused or accepted) register accesses never throw", "exception:r",
  base, [...live(0, 2), { t: "mut", s: 1 }, { t: "r", o: 0x14, w: 1 }, { t: "mut", s: 2 }, { t: "r", o: 0x20, w: 4 }, { t: "w", o: 0x14, w: 1, v: 0 }]);
add("huge-num-pages-own-snapshot", "issue 14 item 4: under the huge-num-pages fault the device restores its own snapshot", "snapshot-round-trip",
  { ...base, faults: { hugeNumPages: true } }, [...live(0, 2), { t: "sr" }, { t: "sr", fresh: true }]);
add("reset-mid-inflate-not-rearmed", "issue 14 item 4: resetMidInflate acts once per device, also across a snapshot", "lockstep:ram-after-fresh-restore",
  { ...base, faults: { resetMidInflate: true } }, [...live(0, 2), ...chain(0, [desc(0x3000, 4)]), { t: "m", a: 0x3000, h: hex32([40]) }, { t: "sr", fresh: true }, { t: "w", o: 0x14, w: 1, v: 0 }, ...live(0, 2), ...chain(0, [desc(0x3000, 4)])]);
add("indirect-desc-accepted-then-saved", "a driver accepting VIRTIO_F_INDIRECT_DESC (bit 28) must not make the device's own snapshot unrestorable", "snapshot-round-trip",
  base, [{ t: "w", o: 0x0c, w: 4, v: 0x100000bf }, { t: "w", o: 0x08, w: 4, v: 1 }, { t: "w", o: 0x0c, w: 4, v: 1 }, { t: "w", o: 0x14, w: 1, v: 0x0f }, { t: "sr" }]);
add("stats-interval-out-of-range", "issue 14 item 3: host stats intervals outside 1 ms .. 2^31-1 ms are refused or clamped, never a 1 ms poll", "timer-range",
  base, [{ t: "h", c: "setStatsInterval", a: 0.000001 }, { t: "h", c: "setStatsInterval", a: 2592000 }, { t: "h", c: "setStatsInterval", a: 1 }]);

const titles: Record<string, string> = {
  "diagnostic-missing_write-straddles-fields": "issue 14 item 5: a write straddling fields is diagnosed",
  "diagnostic-missing_write-to-unused-bar-range": "issue 14 item 5: a write to an unused BAR range is diagnosed",
  "diagnostic-repeated_features-refused": "issue 14 item 5: one refused FEATURES_OK gives one features-refused",
  "no-conformance-rule_avail-idx-jump": "issue 14 item 5: chain kinds have a CONFORMANCE entry (avail-idx-jump)",
  "no-conformance-rule_device-config-out-of-range": "issue 14 item 5: transport kinds have a CONFORMANCE entry (device-config-out-of-range)",
  "no-conformance-rule_features-not-offered": "issue 14 item 5: transport kinds have a CONFORMANCE entry (features-not-offered)",
  "no-conformance-rule_queue-disable-not-supported": "issue 14 item 5: transport kinds have a CONFORMANCE entry (queue-disable-not-supported)",
  "no-conformance-rule_queue-enable-refused": "issue 14 item 5: transport kinds have a CONFORMANCE entry (queue-enable-refused)",
  "no-conformance-rule_status-bits-cleared": "issue 14 item 5: transport kinds have a CONFORMANCE entry (status-bits-cleared)",
  "no-conformance-rule_zero-length": "issue 14 item 5: chain kinds have a CONFORMANCE entry (zero-length)",
  "restore-wrong-error": "issue 14 item 3: a refused hostile restore throws StateError and changes nothing",
};
for (const [name, title] of Object.entries(titles)) {
  const r = JSON.parse(readFileSync(`/tmp/fuzz-min/${name}.json`, "utf8")) as Repro;
  cases.push({ ...r, title, file: name.replace(/_/g, "-") });
}
for (const [src, file, title] of [
  ["/tmp/fuzz-min2/lockstep_diagnostics-after-fresh-restore.json", "fault-counters-survive-snapshot", "issue 14 item 4: fault state (resetMidInflate, act counters) survives a snapshot"],
  ["/tmp/fuzz-min3/lockstep_state-after-fresh-restore.json", "notify-work-counters-survive-snapshot", "counters() of a restored device equal the saved device's"],
] as const) {
  const r = JSON.parse(readFileSync(src, "utf8")) as Repro;
  cases.push({ ...r, title, file });
}
for (const c of cases) {
  const { file, ...r } = c;
  const ops = await concretize(r.config, r.ops);
  const found = await replay(r.config, ops);
  const repro: Repro = { title: r.title, cls: r.cls, message: r.message || found.find((f) => f.cls === r.cls)?.message || "", config: r.config, ops };
  writeFileSync(`${out}${file}.json`, formatRepro(repro));
  console.log(`${file}: ${found.length ? found.map((f) => f.cls).join(", ") : "clean"}`);
}

/**
 * Snapshot panel: save the machine state (v86 save_state), its size raw and gzip-compressed
 * (CompressionStream), restore it, and measure what an inflated balloon saves in a snapshot.
 */
import type { BalloonLike } from "../embed/balloon-types.js";
import type { VM } from "../vm.js";
import { fetchManifest } from "../browser/vm-browser.js";
import { checkStateMatches, decodeStateFile, encodeStateFile, STATE_FORMAT } from "../state-file.js";
import type { FeatureName } from "../vocabulary.js";
import { $, fmtBytes, h, mibToPages, pagesToMiB } from "./dom.js";

export interface Snapshot {
  id: number;
  label: string;
  state: ArrayBuffer;
  raw: number;
  gzip: number | null;
  balloonMiB: number | null;
  ms: number;
}

export async function gzipSize(data: ArrayBuffer): Promise<number | null> {
  if (typeof CompressionStream === "undefined") return null;
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  const reader = stream.getReader();
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    n += value.byteLength;
  }
}

export interface SnapshotPanel {
  snapshots: Snapshot[];
  save(label?: string): Promise<Snapshot>;
  restore(s: Snapshot): Promise<void>;
  /** The state file of a snapshot (src/state-file.ts: the format `mount({ state })` and the snapshot CLI use). */
  fileOf(s: Snapshot): Promise<Uint8Array>;
  /** Saves a snapshot's state file through the browser's download. */
  download(s: Snapshot): Promise<void>;
  /** Restores a state file (same RAM, features and guest images, else refused with the difference named). */
  load(file: Blob & { name?: string }): Promise<void>;
  /** gzip size with the balloon at 0 and at `mib`; returns both and leaves the target where it was. */
  measureGain(mib: number): Promise<{ before: Snapshot; after: Snapshot }>;
}

const KEEP = 3;

/** The guest images' sha256 by file, as a state file names them. */
async function imageSha256(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [file, o] of Object.entries((await fetchManifest()).outputs)) out[file] = o.sha256;
  return out;
}

export function createSnapshotPanel(
  vm: VM,
  balloon: BalloonLike | null,
  memoryMiB: number,
  features: readonly FeatureName[],
  busy: (on: boolean) => void,
): SnapshotPanel {
  const root = $("snapshot");
  root.classList.remove("disabled");
  let nextId = 1;
  const snapshots: Snapshot[] = [];
  const list = h("div", { class: "snap-list" });
  const gain = h("div", { class: "gain muted", id: "snap-gain" }, balloon ? "" : "(no balloon in this build)");
  const saveBtn = h("button", { text: "Save state", id: "snap-save" });
  const gainMiB = h("input", { type: "number", min: 4, max: memoryMiB, step: 4, value: Math.round(memoryMiB / 2), "aria-label": "balloon size for the comparison (MiB)" });
  const gainBtn = h("button", { text: "Compare", id: "snap-gain-btn", title: "snapshot with the balloon empty, inflate, snapshot again" });
  gainBtn.disabled = !balloon;
  const status = h("span", { class: "muted", role: "status", "aria-live": "polite" });
  const fileInput = h("input", { type: "file", id: "snap-file", accept: ".state,application/gzip,application/octet-stream", class: "sr-only", tabindex: -1, "aria-label": "state file to restore" });
  const loadBtn = h("button", { text: "Load file…", id: "snap-load", title: "restore a state file: from Download here or `npx v86-balloon snapshot` (same format as the embed's state=)" });

  const render = () =>
    list.replaceChildren(
      ...snapshots.map((s) => {
        const restore = h("button", { text: "Restore", class: "snap-restore", "aria-label": `Restore ${s.label}` });
        restore.addEventListener("click", () => void run(() => panel.restore(s)));
        const download = h("button", { text: "Download", class: "snap-download", "aria-label": `Download ${s.label} as a file` });
        download.addEventListener("click", () => void run(() => panel.download(s)));
        const ratio = s.gzip ? ` (${((100 * s.gzip) / s.raw).toFixed(1)}%)` : "";
        return h(
          "div",
          { class: "snap" },
          h("span", { class: "snap-label", text: s.label }),
          h("span", { title: "raw state size" }, fmtBytes(s.raw)),
          h("span", { title: "gzip-compressed size" }, s.gzip === null ? "gzip n/a" : `gz ${fmtBytes(s.gzip)}${ratio}`),
          restore,
          download,
        );
      }),
    );

  const run = async (fn: () => Promise<unknown>) => {
    busy(true);
    root.querySelectorAll("button").forEach((b) => (b.disabled = true));
    try {
      await fn();
    } catch (e) {
      status.textContent = `error: ${(e as Error).message}`;
    } finally {
      root.querySelectorAll("button").forEach((b) => (b.disabled = false));
      gainBtn.disabled = !balloon;
      busy(false);
    }
  };

  const waitActual = (pages: number, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const start = performance.now();
      const tick = () => {
        if (!balloon || balloon.actual === pages) return resolve();
        if (performance.now() - start > timeoutMs) return reject(new Error(`balloon did not reach ${pagesToMiB(pages)} MiB in ${timeoutMs / 1000} s (actual ${pagesToMiB(balloon.actual).toFixed(1)} MiB)`));
        setTimeout(tick, 100);
      };
      tick();
    });

  const panel: SnapshotPanel = {
    snapshots,
    async save(label) {
      status.textContent = "saving…";
      const t = performance.now();
      const state = await vm.saveState();
      const ms = performance.now() - t;
      status.textContent = "compressing…";
      const gz = await gzipSize(state);
      const balloonMiB = balloon ? pagesToMiB(balloon.actual) : null;
      const s: Snapshot = {
        id: nextId,
        label: label ?? `#${nextId}${balloonMiB !== null ? ` · balloon ${balloonMiB.toFixed(0)} MiB` : ""}`,
        state,
        raw: state.byteLength,
        gzip: gz,
        balloonMiB,
        ms,
      };
      nextId++;
      snapshots.push(s);
      if (snapshots.length > KEEP) snapshots.splice(0, snapshots.length - KEEP);
      status.textContent = `saved in ${ms.toFixed(0)} ms`;
      render();
      return s;
    },
    async restore(s) {
      status.textContent = "restoring…";
      const t = performance.now();
      await vm.restoreState(s.state);
      vm.send("\n"); // the restored shell prints a fresh prompt
      status.textContent = `restored ${s.label} in ${(performance.now() - t).toFixed(0)} ms`;
    },
    async fileOf(s) {
      return encodeStateFile(
        { format: STATE_FORMAT, memoryMiB, features: [...features], images: { sha256: await imageSha256() }, rawBytes: s.raw, created: new Date().toISOString() },
        s.state,
      );
    },
    async download(s) {
      const a = h("a", { href: URL.createObjectURL(new Blob([(await panel.fileOf(s)) as Uint8Array<ArrayBuffer>])), download: `v86-balloon-${memoryMiB}M-${s.id}.state` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      status.textContent = `downloaded ${a.download}`;
    },
    async load(file) {
      const name = file.name ?? "file";
      status.textContent = `loading ${name}…`;
      const { header, v86State } = await decodeStateFile(await file.arrayBuffer());
      checkStateMatches(header, { memoryMiB, features, imageSha256: await imageSha256() });
      const s: Snapshot = { id: nextId++, label: name, state: v86State, raw: v86State.byteLength, gzip: null, balloonMiB: null, ms: 0 };
      await panel.restore(s);
    },
    async measureGain(mib) {
      if (!balloon) throw new Error("no balloon");
      const keep = balloon.target;
      balloon.setTarget(0);
      await waitActual(0, 60000);
      const before = await panel.save(`balloon 0 MiB`);
      status.textContent = `inflating to ${mib} MiB…`;
      balloon.setTarget(mibToPages(mib));
      await waitActual(mibToPages(mib), 120000);
      const after = await panel.save(`balloon ${mib} MiB`);
      balloon.setTarget(keep);
      const size = (x: Snapshot) => x.gzip ?? x.raw;
      const saved = size(before) - size(after);
      const pct = `${((100 * Math.abs(saved)) / size(before)).toFixed(1)}%`;
      const what = before.gzip !== null && after.gzip !== null ? "gzip-compressed snapshot" : "snapshot";
      gain.className = `gain ${saved > 0 ? "good" : "loss"}`;
      gain.dataset.result = saved > 0 ? "gain" : "loss";
      gain.replaceChildren(
        `${mib} MiB in the balloon: the ${what} went from `,
        h("b", { text: fmtBytes(size(before)) }),
        " to ",
        h("b", { text: fmtBytes(size(after)) }),
        saved > 0
          ? `, ${fmtBytes(saved)} (${pct}) smaller: a gain.`
          : `, ${fmtBytes(-saved)} (${pct}) larger: a loss, no gain. Free memory was already zero here (PAGE_REPORTING zeroes what the guest frees), so the balloon only added its own bookkeeping.`,
      );
      return { before, after };
    },
  };
  saveBtn.addEventListener("click", () => void run(() => panel.save()));
  loadBtn.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    if (file) void run(() => panel.load(file));
    fileInput.value = "";
  });
  gainBtn.addEventListener("click", () => void run(() => panel.measureGain(Number(gainMiB.value))));
  root.replaceChildren(
    h("div", { class: "button-row" }, saveBtn, loadBtn, fileInput, status),
    list,
    h("div", { class: "button-row" }, h("span", { class: "muted", text: "Snapshot size, balloon 0 vs" }), gainMiB, h("span", { class: "muted", text: "MiB" }), gainBtn),
    gain,
  );
  return panel;
}

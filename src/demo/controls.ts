/** Balloon controls: target slider + input, inflate / deflate steps, hinting cycle, stats interval, counters. */
import type { BalloonLike } from "../embed/balloon-types.js";
import { FEATURES } from "../vocabulary.js";
import { $, fmtBytes, h, mibToPages, pagesToMiB } from "./dom.js";

export interface Controls {
  /** Sets the target in MiB exactly as the slider would. */
  setTargetMiB(mib: number): void;
  readonly slider: HTMLInputElement;
}

/** Bits of a features value whatever its shape (number, bigint, {offered, negotiated}, names). */
function bitsOf(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v & 0xffffffffn);
  if (Array.isArray(v)) {
    let m = 0;
    for (const x of v) {
      const f = FEATURES.find((f) => f.bit === x || f.name === x || f.spec === x);
      if (f) m |= 1 << f.bit;
    }
    return m;
  }
  return null;
}

export function renderFeatureChips(balloon: BalloonLike): void {
  const box = $("features-chips");
  const f = balloon.features as { offered?: unknown; negotiated?: unknown } | undefined;
  const offered = bitsOf(f?.offered ?? f);
  const negotiated = bitsOf(f?.negotiated);
  box.replaceChildren(
    ...FEATURES.filter((x) => offered === null || offered & (1 << x.bit)).map((x) => {
      const on = negotiated !== null && (negotiated & (1 << x.bit)) !== 0;
      return h("span", {
        class: `chip feat ${on ? "on" : "off"}`,
        title: `${x.spec} (bit ${x.bit}): ${x.help} — ${negotiated === null ? "offered" : on ? "negotiated" : "offered, not accepted by the guest"}`,
        text: x.name,
      });
    }),
  );
}

export function createControls(balloon: BalloonLike, memoryMiB: number): Controls {
  const root = $("controls");
  root.classList.remove("disabled");
  const slider = h("input", { type: "range", min: 0, max: memoryMiB, step: 1, value: 0, id: "target-slider", "aria-label": "balloon target (MiB)" });
  const number = h("input", { type: "number", min: 0, max: memoryMiB, step: 1, value: 0, id: "target-input", "aria-label": "balloon target in MiB" });
  const step = Math.max(4, Math.round(memoryMiB / 8));
  const inflate = h("button", { text: `Inflate +${step}`, title: `grow the balloon by ${step} MiB` });
  const deflate = h("button", { text: `Deflate −${step}`, title: `shrink the balloon by ${step} MiB` });
  const zero = h("button", { text: "Deflate all" });
  const hint = h("button", { id: "hint-cycle", text: "Run a hinting cycle", title: "start a free page hinting cycle (FREE_PAGE_HINT)" });
  const hintNote = h("span", { id: "hint-note", class: "muted", role: "status", "aria-live": "polite" });
  const interval = h(
    "select",
    { id: "stats-interval", "aria-label": "statistics interval", title: "how often the device asks the guest for memory statistics" },
    ...[
      ["0", "off"],
      ["0.5", "0.5 s"],
      ["1", "1 s"],
      ["2", "2 s"],
      ["5", "5 s"],
    ].map(([v, t]) => h("option", { value: v, text: t, selected: v === "1" })),
  );
  const readout = h("div", { class: "readout" });
  const counters = h("div", { class: "counters" });
  const limitNote = $("limit-note");

  /** The floor, as the controls show it: slider and input stop there; the note says why. */
  const showLimit = () => {
    const lim = balloon.limit();
    const max = Math.floor(pagesToMiB(lim.maxPages));
    slider.max = number.max = String(max);
    const clamp = balloon.lastClamp;
    limitNote.dataset.clamped = clamp ? "yes" : "no";
    limitNote.textContent = clamp
      ? `Held at ${pagesToMiB(clamp.pages).toFixed(0)} MiB, not ${pagesToMiB(clamp.requested).toFixed(0)}: ${clamp.limit.reason}.`
      : `The balloon can take up to ${max} MiB now: ${lim.reason}.`;
  };

  let pending: ReturnType<typeof setTimeout> | null = null;
  const setTargetMiB = (mib: number) => {
    mib = Math.max(0, Math.round(Number.isFinite(mib) ? mib : 0));
    const pages = balloon.setTarget(mibToPages(mib));
    slider.value = number.value = String(Math.round(pagesToMiB(pages)));
    showLimit();
    update();
  };
  // The slider sets the target while dragging, at most every 120 ms.
  slider.addEventListener("input", () => {
    number.value = slider.value;
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => setTargetMiB(Number(slider.value)), 120);
  });
  slider.addEventListener("change", () => {
    if (pending) clearTimeout(pending);
    setTargetMiB(Number(slider.value));
  });
  number.addEventListener("change", () => setTargetMiB(Number(number.value)));
  inflate.addEventListener("click", () => setTargetMiB(pagesToMiB(balloon.target) + step));
  deflate.addEventListener("click", () => setTargetMiB(pagesToMiB(balloon.target) - step));
  zero.addEventListener("click", () => setTargetMiB(0));
  hint.addEventListener("click", () => {
    const cmd = balloon.startHinting();
    hintNote.textContent =
      cmd === null ? "Hinting is off: the guest did not negotiate FREE_PAGE_HINT (tick it before booting)." : `Hinting cycle started (command id ${cmd})…`;
  });
  balloon.on("hint", (e) => {
    if (e.phase === "done" || e.phase === "stopped" || e.phase === "driver-stopped") {
      hintNote.textContent = `Hinting cycle ${e.cycle} ${e.phase === "done" ? "done" : "stopped"}: the guest hinted ${e.totalPages} free pages (${pagesToMiB(e.totalPages).toFixed(1)} MiB).`;
    }
  });
  interval.addEventListener("change", () => balloon.setStatsInterval(Number(interval.value)));
  balloon.setStatsInterval(1);

  const update = () => {
    const t = pagesToMiB(balloon.target);
    const a = pagesToMiB(balloon.actual);
    readout.replaceChildren(
      h("span", {}, "target ", h("b", { id: "ro-target", text: `${t.toFixed(1)} MiB` })),
      h("span", {}, "actual ", h("b", { id: "ro-actual", text: `${a.toFixed(1)} MiB` })),
      h("span", { class: a === t ? "ok" : "busy", text: a === t ? "settled" : a < t ? "inflating…" : "deflating…" }),
    );
    const c = balloon.counters();
    counters.replaceChildren(
      ...(
        [
          ["inflated", `${c.pagesInflated} pg`],
          ["deflated", `${c.pagesDeflated} pg`],
          ["reported", `${c.pagesReported} pg`],
          ["hinted", `${c.pagesHinted} pg`],
          ["zeroed", fmtBytes(c.bytesZeroed)],
          ["diagnostics", String(c.diagnostics ?? 0)],
        ] as const
      ).map(([k, v]) => h("span", {}, `${k} `, h("b", { text: v }))),
    );
  };
  setInterval(() => {
    update();
    if (!balloon.lastClamp) showLimit();
  }, 250);
  balloon.on("actual", update);
  balloon.on("target", () => {
    // The target can also change from elsewhere (restore, console); keep the slider honest.
    if (document.activeElement !== slider && document.activeElement !== number) {
      slider.value = number.value = String(Math.round(pagesToMiB(balloon.target)));
    }
    update();
  });
  root.replaceChildren(
    h("div", { class: "target-row" }, h("label", { for: "target-slider", text: "Target" }), slider, number, h("span", { class: "muted", text: "MiB" })),
    h("div", { class: "button-row" }, inflate, deflate, zero, hint, h("label", { class: "muted" }, "stats every ", interval)),
    hintNote,
    readout,
    counters,
  );
  update();
  showLimit();
  renderFeatureChips(balloon);
  balloon.on("features", () => renderFeatureChips(balloon));
  return { setTargetMiB, slider };
}

/** Before boot: RAM size and feature checkboxes; while loading: the boot steps; on failure: the error panel. */
import { LoadError } from "../embed/boot.js";
import { DEFAULT_FEATURES, FEATURES, type FeatureName } from "../vocabulary.js";
import { $, h } from "./dom.js";
import type { DemoParams } from "./params.js";

export interface SetupChoice {
  memoryMiB: number;
  features: FeatureName[];
}

export type BootStep = "download" | "emulator" | "linux" | "prompt";

export interface SetupPanel {
  /** Resolves with the user's choice when Boot is pressed (at once with a valid `?autoboot`). */
  choice(): Promise<SetupChoice>;
  /** Shows `step` as current; `fraction` fills the bar (null: indeterminate). */
  progress(step: BootStep, label: string, fraction: number | null): void;
  hide(): void;
  error(e: unknown, title?: string): Promise<void>;
}

/** The terminal cannot take focus while the overlay covers it (it would trap Tab behind the form). */
function coverTerminal(on: boolean): void {
  $("setup").hidden = !on;
  $("terminal").inert = on;
  for (const id of ["term-copy", "term-paste", "term-clear"]) $<HTMLButtonElement>(id).disabled = on;
}

export function createSetupPanel(params: DemoParams): SetupPanel {
  const memorySel = $<HTMLSelectElement>("setup-memory");
  if (params.memoryMiB !== null) {
    const mem = String(params.memoryMiB);
    if (![...memorySel.options].some((o) => o.value === mem)) memorySel.append(h("option", { value: mem, text: `${mem} MiB` }));
    memorySel.value = mem;
  }
  const initial = params.features ?? DEFAULT_FEATURES;
  const box = $("setup-features");
  const checks = new Map<FeatureName, HTMLInputElement>();
  for (const f of FEATURES) {
    const input = h("input", { type: "checkbox", checked: initial.includes(f.name), name: f.name, "aria-describedby": `help-${f.name}` });
    checks.set(f.name, input);
    box.append(
      h(
        "label",
        { title: f.help, class: "feature" },
        input,
        h("code", { text: f.spec }),
        h("span", { class: "muted", text: ` bit ${f.bit}` }),
        h("span", { class: "sr-only", id: `help-${f.name}`, text: f.help }),
      ),
    );
  }
  box.append(
    h("p", {
      class: "hint",
      text: "Without DEFLATE_ON_OOM the guest's MemTotal shrinks as the balloon grows; with it, the guest takes pages back under memory pressure. Linux only reports free pages while more than ~128 MiB (32 blocks of 4 MiB) plus the low watermark is free: use 256 MiB or more to see PAGE_REPORTING at work.",
    }),
  );
  const problems = $("setup-problems");
  const lines = [...params.errors, ...params.warnings];
  problems.hidden = lines.length === 0;
  problems.replaceChildren(...lines.map((t) => h("p", { class: params.errors.includes(t) ? "bad" : "warn", text: t })));

  const form = $<HTMLFormElement>("setup-form");
  const progressBox = $("progress");
  const errorBox = $("error");
  let autoboot = params.autoboot;

  const read = (): SetupChoice => ({
    memoryMiB: Number(memorySel.value),
    features: FEATURES.filter((f) => checks.get(f.name)!.checked).map((f) => f.name),
  });
  const show = (which: "form" | "progress" | "error") => {
    coverTerminal(true);
    form.hidden = which !== "form";
    progressBox.hidden = which !== "progress";
    errorBox.hidden = which !== "error";
  };

  const panel: SetupPanel = {
    choice: () =>
      new Promise((resolve) => {
        show("form");
        const boot = () => {
          autoboot = false; // only the first time
          resolve(read());
        };
        form.addEventListener(
          "submit",
          (ev) => {
            ev.preventDefault();
            boot();
          },
          { once: true },
        );
        if (autoboot && params.errors.length === 0) boot();
        else if (autoboot) {
          autoboot = false;
          void panel.error(new Error(`Not booting: the URL asks for something this page refuses.\n\n${params.errors.join("\n")}`), "The URL parameters were refused").then(() => show("form"));
        }
      }),
    progress(step, label, fraction) {
      show("progress");
      $("progress-label").textContent = label;
      const bar = $("progress-bar");
      const fill = $("progress-fill");
      fill.classList.toggle("indeterminate", fraction === null);
      const pct = fraction === null ? null : Math.round(100 * Math.min(1, fraction));
      fill.style.width = pct === null ? "" : `${pct}%`;
      if (pct === null) bar.removeAttribute("aria-valuenow");
      else bar.setAttribute("aria-valuenow", String(pct));
      bar.setAttribute("aria-valuetext", label);
      let seen = false;
      for (const li of $("progress-steps").querySelectorAll<HTMLElement>("li")) {
        const current = li.dataset.step === step;
        li.dataset.state = current ? "current" : seen ? "todo" : "done";
        if (current) li.setAttribute("aria-current", "step");
        else li.removeAttribute("aria-current");
        seen ||= current;
      }
    },
    hide() {
      coverTerminal(false);
    },
    error: (e: unknown, title?: string) => {
      show("error");
      const kind = e instanceof LoadError ? e.kind : "boot";
      $("error-title").textContent =
        title ??
        (kind === "webassembly"
          ? "WebAssembly is not available in this browser"
          : kind === "file"
            ? "A guest file could not be loaded"
            : "The guest did not boot");
      $("error-text").textContent = e instanceof Error ? e.message : String(e);
      $("error-retry").focus();
      return new Promise<void>((resolve) => $("error-retry").addEventListener("click", () => resolve(), { once: true }));
    },
  };
  return panel;
}

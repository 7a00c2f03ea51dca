/** Before boot: RAM size and feature checkboxes; while loading: progress; on failure: the error panel. */
import { LoadError } from "../embed/boot.js";
import { DEFAULT_FEATURES, FEATURES, parseFeatures, type FeatureName } from "../vocabulary.js";
import { $, h } from "./dom.js";

export interface SetupChoice {
  memoryMiB: number;
  features: FeatureName[];
}

export interface SetupPanel {
  /** Resolves with the user's choice when Boot is pressed (at once with `?autoboot`). */
  choice(): Promise<SetupChoice>;
  progress(label: string, fraction: number | null): void;
  hide(): void;
  error(e: unknown): Promise<void>;
}

export function createSetupPanel(): SetupPanel {
  const params = new URLSearchParams(location.search);
  const memorySel = $<HTMLSelectElement>("setup-memory");
  const mem = params.get("memory");
  if (mem) {
    if (![...memorySel.options].some((o) => o.value === mem)) memorySel.append(h("option", { value: mem, text: `${mem} MiB` }));
    memorySel.value = mem;
  }
  let initial: FeatureName[] = [...DEFAULT_FEATURES];
  if (params.has("features")) initial = parseFeatures(params.get("features")!);
  const box = $("setup-features");
  const checks = new Map<FeatureName, HTMLInputElement>();
  for (const f of FEATURES) {
    const input = h("input", { type: "checkbox", checked: initial.includes(f.name), name: f.name });
    checks.set(f.name, input);
    box.append(h("label", { title: f.help, class: "feature" }, input, h("code", { text: f.spec }), h("span", { class: "muted", text: ` bit ${f.bit}` })));
  }
  box.append(
    h("p", {
      class: "hint",
      text: "Without DEFLATE_ON_OOM the guest's MemTotal shrinks as the balloon grows; with it, the guest takes pages back under memory pressure. Linux only reports free pages while more than ~128 MiB (32 blocks of 4 MiB) plus the low watermark is free: use 256 MiB or more to see PAGE_REPORTING at work.",
    }),
  );
  const overlay = $("setup");
  const form = $<HTMLFormElement>("setup-form");
  const progressBox = $("progress");
  const errorBox = $("error");

  const read = (): SetupChoice => ({
    memoryMiB: Number(memorySel.value),
    features: FEATURES.filter((f) => checks.get(f.name)!.checked).map((f) => f.name),
  });

  return {
    choice: () =>
      new Promise((resolve) => {
        overlay.hidden = false;
        form.hidden = false;
        progressBox.hidden = true;
        errorBox.hidden = true;
        if (params.has("autoboot")) {
          params.delete("autoboot"); // only the first time
          resolve(read());
          return;
        }
        form.addEventListener(
          "submit",
          (ev) => {
            ev.preventDefault();
            resolve(read());
          },
          { once: true },
        );
        $("boot").focus();
      }),
    progress(label, fraction) {
      overlay.hidden = false;
      form.hidden = true;
      errorBox.hidden = true;
      progressBox.hidden = false;
      $("progress-label").textContent = label;
      const fill = $("progress-fill");
      fill.classList.toggle("indeterminate", fraction === null);
      fill.style.width = fraction === null ? "" : `${Math.round(100 * Math.min(1, fraction))}%`;
    },
    hide() {
      overlay.hidden = true;
    },
    error(e) {
      overlay.hidden = false;
      form.hidden = true;
      progressBox.hidden = true;
      errorBox.hidden = false;
      const kind = e instanceof LoadError ? e.kind : "boot";
      $("error-title").textContent =
        kind === "webassembly"
          ? "WebAssembly is not available in this browser"
          : kind === "file"
            ? "A guest file could not be loaded"
            : "The guest did not boot";
      $("error-text").textContent = e instanceof Error ? e.message : String(e);
      return new Promise((resolve) => $("error-retry").addEventListener("click", () => resolve(), { once: true }));
    },
  };
}

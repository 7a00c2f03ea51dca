/** The demo page: wires the terminal, setup, balloon controls, charts, event log, snapshots and scenarios. */
import "./demo.css";
import type { BalloonLike } from "../embed/balloon-types.js";
import { bootGuest } from "../embed/boot.js";
import type { FeatureName } from "../vocabulary.js";
import type { VM } from "../vm.js";
import { Charts } from "./charts.js";
import { createControls, type Controls } from "./controls.js";
import { $, h } from "./dom.js";
import { EventLog } from "./eventlog.js";
import { createScenarios } from "./scenarios.js";
import { createSetupPanel } from "./setup.js";
import { createSnapshotPanel, type SnapshotPanel } from "./snapshot.js";
import { createTerminalPanel } from "./terminal.js";

type State = "setup" | "loading" | "booting" | "ready" | "error";

/** What tests and benchmarks read (and drive) from the page. */
export interface DemoHandle {
  state: State;
  error: string | null;
  memoryMiB: number;
  features: FeatureName[];
  bootMs: number | null;
  vm: VM | null;
  balloon: BalloonLike | null;
  controls: Controls | null;
  snapshot: SnapshotPanel | null;
  charts: Charts;
  log: EventLog;
  /** The terminal's text (scrollback + screen). */
  text(): string;
  terminal: ReturnType<typeof createTerminalPanel>;
}

declare global {
  interface Window {
    __demo: DemoHandle;
  }
}

const statusEl = $("status");
function setState(state: State, text: string): void {
  demo.state = state;
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

let vmRef: VM | null = null;
const terminal = createTerminalPanel((data) => vmRef?.send(data));
const charts = new Charts($("charts"));
const log = new EventLog();
const setup = createSetupPanel();

const demo: DemoHandle = {
  state: "setup",
  error: null,
  memoryMiB: 0,
  features: [],
  bootMs: null,
  vm: null,
  balloon: null,
  controls: null,
  snapshot: null,
  charts,
  log,
  text: () => terminal.text(),
  terminal,
};
window.__demo = demo;

function busy(on: boolean): void {
  document.body.classList.toggle("busy", on);
}

async function bootOnce(memoryMiB: number, features: FeatureName[]): Promise<void> {
  demo.memoryMiB = memoryMiB;
  demo.features = features;
  demo.error = null;
  setState("loading", "loading images…");
  setup.progress("loading guest images…", 0);
  let sawSerial = false;
  const t0 = performance.now();
  terminal.term.reset();
  const { vm, balloon } = await bootGuest({
    memoryMiB,
    features,
    onProgress: (l, t) => {
      // Other downloads keep streaming after one failed: never cover the error panel.
      if (demo.state !== "loading") return;
      setup.progress(`loading guest images… ${(l / 1048576).toFixed(1)} of ${(t / 1048576).toFixed(1)} MiB`, t ? l / t : null);
    },
    onSerial: (text) => {
      if (!sawSerial) {
        sawSerial = true;
        setup.hide();
        setState("booting", "booting Linux…");
      }
      terminal.writeSerial(text);
    },
  });
  if (!sawSerial) setup.hide();
  demo.bootMs = performance.now() - t0;
  demo.vm = vmRef = vm;
  demo.balloon = balloon;
  setState("ready", `${memoryMiB} MiB guest · booted in ${(demo.bootMs / 1000).toFixed(1)} s`);
  terminal.term.focus();

  createScenarios(vm, memoryMiB, () => terminal.term.focus());
  demo.snapshot = createSnapshotPanel(vm, balloon, memoryMiB, busy);
  if (balloon) {
    demo.controls = createControls(balloon, memoryMiB);
    log.attach(balloon);
    charts.attach(balloon);
    $("chart-note").textContent = "sampled 4×/s";
  } else {
    $("controls").replaceChildren(
      h("p", { class: "muted", text: "This build boots the guest without the balloon device (the browser VM has no balloon yet)." }),
    );
    $("chart-note").textContent = "no balloon: no data";
  }
}

async function main(): Promise<void> {
  for (;;) {
    setState("setup", "not booted");
    const { memoryMiB, features } = await setup.choice();
    try {
      await bootOnce(memoryMiB, features);
      return;
    } catch (e) {
      console.error(e);
      demo.error = e instanceof Error ? e.message : String(e);
      setState("error", "error");
      await setup.error(e);
    }
  }
}

void main();

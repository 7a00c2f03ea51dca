/** The demo page: wires the terminal, setup, balloon controls, charts, event log, snapshots and scenarios. */
import "./demo.css";
import type { BalloonLike } from "../embed/balloon-types.js";
import { bootGuest } from "../embed/boot.js";
import type { FeatureName } from "../vocabulary.js";
import { fetchManifest, v86WasmUrl } from "../browser/vm-browser.js";
import { IMAGE_FILES } from "../guest-manifest.js";
import type { FloorOption } from "../host/floor.js";
import type { VM } from "../vm.js";
import { Charts } from "./charts.js";
import { ConsoleStream, type Trouble } from "./console.js";
import { createControls, type Controls } from "./controls.js";
import { $, MiB } from "./dom.js";
import { EventLog } from "./eventlog.js";
import { paramsFor, parseParams } from "./params.js";
import { createScenarios } from "./scenarios.js";
import { createSetupPanel } from "./setup.js";
import { createSnapshotPanel, type SnapshotPanel } from "./snapshot.js";
import { createTerminalPanel } from "./terminal.js";

type State = "setup" | "loading" | "booting" | "ready" | "trouble" | "error";

/** What tests and benchmarks read (and drive) from the page. */
export interface DemoHandle {
  state: State;
  error: string | null;
  /** Set when the guest panicked / ran out of memory (serial console), with the line that said so. */
  trouble: Trouble | null;
  memoryMiB: number;
  features: FeatureName[];
  bootMs: number | null;
  /** Bytes the page says a boot downloads (guest images + emulator), null until known. */
  statedDownloadBytes: number | null;
  vm: VM | null;
  balloon: BalloonLike | null;
  controls: Controls | null;
  snapshot: SnapshotPanel | null;
  charts: Charts;
  log: EventLog;
  console: ConsoleStream;
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
const rebootBtn = $<HTMLButtonElement>("reboot");
function setState(state: State, text: string): void {
  demo.state = state;
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

const params = parseParams(location.search);
let vmRef: VM | null = null;
// The terminal never passes its own replies (cursor reports) on: what arrives here is the user typing.
const terminal = createTerminalPanel((data) => {
  stream.typed();
  vmRef?.send(data);
});
const stream = new ConsoleStream({
  out: (text) => terminal.writeSerial(text),
  send: (text) => vmRef?.send(text),
  onTrouble: (t) => troubled(t),
});
terminal.term.onResize(({ rows, cols }) => stream.resize(rows, cols));
const charts = new Charts($("charts"));
const log = new EventLog();
const setup = createSetupPanel(params);

const demo: DemoHandle = {
  state: "setup",
  error: null,
  trouble: null,
  memoryMiB: 0,
  features: [],
  bootMs: null,
  statedDownloadBytes: null,
  vm: null,
  balloon: null,
  controls: null,
  snapshot: null,
  charts,
  log,
  console: stream,
  text: () => terminal.text(),
  terminal,
};
window.__demo = demo;

function busy(on: boolean): void {
  document.body.classList.toggle("busy", on);
}

const TROUBLE_TEXT: Record<Trouble["kind"], string> = {
  panic: "the guest kernel panicked and is dead",
  oom: "the guest ran out of memory (the kernel's OOM killer acted)",
  "out-of-puff": "the guest has no memory left to give the balloon (\"Out of puff\")",
};

/** The serial console says the guest is in trouble: the status says so and offers a reboot. */
function troubled(t: Trouble): void {
  // A panic outranks what came before it; an OOM kill after a panic cannot happen.
  if (demo.trouble?.kind === "panic") return;
  demo.trouble = t;
  setState("trouble", `${TROUBLE_TEXT[t.kind]}: ${t.line}`);
  rebootBtn.hidden = false;
}

rebootBtn.addEventListener("click", () => {
  location.search = paramsFor(demo.memoryMiB, demo.features, params.floor);
});

/** The guest images' total by the manifest (the download's real total from the first byte on). */
let imageBytes = 0;

/** What a boot downloads: the images by the manifest, the emulator by its Content-Length. */
async function statedDownload(): Promise<void> {
  try {
    const manifest = await fetchManifest();
    const images = Object.values(IMAGE_FILES).reduce((n, f) => n + (manifest.outputs[f]?.size ?? 0), 0);
    imageBytes = images;
    const head = await fetch(v86WasmUrl(), { method: "HEAD" });
    const wasm = Number(head.headers.get("content-length") ?? 0);
    demo.statedDownloadBytes = images + wasm;
    $("setup-size").textContent =
      `Downloads ${((images + wasm) / MiB).toFixed(1)} MiB (guest images ${(images / MiB).toFixed(1)} MiB, emulator ${(wasm / MiB).toFixed(1)} MiB), then boots in a few seconds.`;
  } catch {
    /* the generic sentence stays; the boot itself reports a missing file */
  }
}

async function bootOnce(memoryMiB: number, features: FeatureName[], floor: FloorOption): Promise<void> {
  demo.memoryMiB = memoryMiB;
  demo.features = features;
  demo.error = null;
  setState("loading", "downloading the guest…");
  setup.progress("download", "downloading the guest images…", 0);
  let step: "download" | "emulator" | "linux" = "download";
  const t0 = performance.now();
  terminal.term.reset();
  const { vm, balloon } = await bootGuest({
    memoryMiB,
    features,
    floor,
    onProgress: (l, announced) => {
      // Other downloads keep streaming after one failed: never cover the error panel.
      if (demo.state !== "loading" || step !== "download") return;
      const t = Math.max(announced, imageBytes);
      setup.progress("download", `downloading the guest images: ${(l / MiB).toFixed(1)} of ${(t / MiB).toFixed(1)} MiB`, t ? l / t : null);
      if (t && l >= t) {
        step = "emulator";
        setState("booting", "starting the emulator…");
        setup.progress("emulator", "starting the emulator (v86.wasm)…", null);
      }
    },
    onSerial: (text) => {
      if (step !== "linux") {
        step = "linux";
        setState("booting", "booting Linux…");
      }
      stream.write(text);
      if (demo.state === "booting") setup.progress("linux", `booting Linux: ${stream.lines} kernel log lines`, null);
    },
  });
  setup.progress("prompt", "prompt", 1);
  setup.hide();
  terminal.refit(); // visible again (a phone hides it behind the setup form): its real size, now
  demo.bootMs = performance.now() - t0;
  demo.vm = vmRef = vm;
  demo.balloon = balloon;
  if (demo.state !== "trouble") setState("ready", `${memoryMiB} MiB guest · booted in ${(demo.bootMs / 1000).toFixed(1)} s`);
  stream.resize(terminal.term.rows, terminal.term.cols);
  stream.connect();
  terminal.term.focus();

  createScenarios(vm, memoryMiB, () => terminal.term.focus());
  demo.snapshot = createSnapshotPanel(vm, balloon, memoryMiB, features, busy);
  demo.controls = createControls(balloon, memoryMiB);
  log.attach(balloon);
  charts.attach(balloon);
  $("chart-note").textContent = "sampled 4×/s";
}

async function main(): Promise<void> {
  void statedDownload();
  for (;;) {
    setState("setup", "not booted");
    const { memoryMiB, features } = await setup.choice();
    try {
      await bootOnce(memoryMiB, features, params.floor);
      return;
    } catch (e) {
      console.error(e);
      demo.error = e instanceof Error ? e.message : String(e);
      setState("error", `error: ${demo.error.split("\n")[0]}`);
      await setup.error(e);
    }
  }
}

void main();

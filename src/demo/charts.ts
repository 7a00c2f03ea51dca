/**
 * Live charts (uPlot): guest memory from the stats queue, balloon target vs actual, bytes zeroed by
 * the device, free-page reports and hints per second. Sampled at 4 Hz; redrawn from
 * requestAnimationFrame at most 5 times a second, and only when there is new data.
 */
import uPlot from "uplot";
import uplotCss from "uplot/dist/uPlot.min.css?inline";
import { statsValues, type BalloonLike } from "../embed/balloon-types.js";
import { injectStyle } from "../embed/terminal.js";
import { h, MiB, pagesToMiB } from "./dom.js";

export interface ChartData {
  t: number[];
  memTotal: (number | null)[];
  memFree: (number | null)[];
  memAvail: (number | null)[];
  target: number[];
  actual: number[];
  zeroed: number[];
  reportsPerSec: number[];
  hintsPerSec: number[];
}

const KEEP = 480; // 2 minutes at 4 Hz
const SAMPLE_MS = 250;
const MIN_REDRAW_MS = 200;

function emptyData(): ChartData {
  return { t: [], memTotal: [], memFree: [], memAvail: [], target: [], actual: [], zeroed: [], reportsPerSec: [], hintsPerSec: [] };
}

interface ChartSpec {
  title: string;
  unit: string;
  series: { label: string; key: keyof ChartData; color: string; fill?: string; dash?: number[]; step?: boolean }[];
}

const SPECS: ChartSpec[] = [
  {
    title: "Guest memory (stats queue)",
    unit: "MiB",
    series: [
      { label: "MemTotal", key: "memTotal", color: "#9aa5b1" },
      { label: "MemAvailable", key: "memAvail", color: "#4fb3ff" },
      { label: "MemFree", key: "memFree", color: "#54d18a", fill: "#54d18a22" },
    ],
  },
  {
    title: "Balloon size",
    unit: "MiB",
    series: [
      { label: "target", key: "target", color: "#ffb454", dash: [6, 4], step: true },
      { label: "actual", key: "actual", color: "#ff6b6b", fill: "#ff6b6b22" },
    ],
  },
  { title: "Zeroed by the device", unit: "MiB", series: [{ label: "zeroed", key: "zeroed", color: "#c792ea", fill: "#c792ea22" }] },
  {
    title: "Free-page reports / hints",
    unit: "pages/s",
    series: [
      { label: "reported", key: "reportsPerSec", color: "#54d18a" },
      { label: "hinted", key: "hintsPerSec", color: "#4fb3ff" },
    ],
  },
];

export class Charts {
  data: ChartData = emptyData();
  /** Chart redraws so far (for the frame-rate benchmark). */
  redraws = 0;
  private plots: uPlot[] = [];
  private boxes: HTMLElement[] = [];
  /** Per chart, the text view of its latest values (the canvas itself is hidden from screen readers). */
  private texts: HTMLElement[] = [];
  private dirty = false;
  private lastDraw = 0;
  private raf = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private t0 = performance.now();
  private last: { t: number; reported: number; hinted: number } | null = null;
  private resize: ResizeObserver;

  constructor(container: HTMLElement) {
    injectStyle("uplot-css", uplotCss);
    SPECS.forEach((spec, i) => {
      const box = h("div", { class: "chart-plot", "aria-hidden": "true" });
      const text = h("p", { class: "chart-text", id: `chart-text-${i}` });
      container.append(
        h("figure", { class: "chart", "aria-labelledby": `chart-title-${i}`, "aria-describedby": `chart-text-${i}` }, h("figcaption", { id: `chart-title-${i}`, text: spec.title }), box, text),
      );
      this.boxes.push(box);
      this.texts.push(text);
      const opts: uPlot.Options = {
        width: 300,
        height: 130,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.08)] } },
        axes: [
          { stroke: "#8b98a8", grid: { stroke: "#2b354230" }, ticks: { stroke: "#2b3542" }, size: 22, values: (_u, v) => v.map((x) => `${Math.round(x)}s`) },
          {
            stroke: "#8b98a8",
            grid: { stroke: "#2b3542" },
            ticks: { stroke: "#2b3542" },
            size: 44,
            label: spec.unit,
            labelSize: 14,
            values: (_u, v) => v.map((x) => (Math.abs(x) >= 1e6 ? `${+(x / 1e6).toFixed(1)}M` : Math.abs(x) >= 1e4 ? `${+(x / 1e3).toFixed(0)}k` : `${+x.toFixed(1)}`)),
          },
        ],
        series: [
          {},
          ...spec.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            fill: s.fill,
            dash: s.dash,
            spanGaps: false,
            points: { show: false },
            ...(s.step ? { paths: uPlot.paths.stepped!({ align: 1 }) } : {}),
          })),
        ],
      };
      this.plots.push(new uPlot(opts, this.series(spec) as uPlot.AlignedData, box));
    });
    this.writeTexts();
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
    this.fit();
  }

  private series(spec: ChartSpec): (number | null)[][] {
    return [this.data.t, ...spec.series.map((s) => this.data[s.key] as (number | null)[])];
  }

  private fit(): void {
    this.plots.forEach((p, i) => {
      const w = this.boxes[i].clientWidth;
      if (w > 50 && Math.abs(p.width - w) > 2) p.setSize({ width: w, height: 130 });
    });
  }

  /** Starts sampling `balloon` (replacing any previous one). */
  attach(balloon: BalloonLike | null): void {
    this.detach();
    this.data = emptyData();
    this.t0 = performance.now();
    this.last = null;
    this.timer = setInterval(() => this.sample(balloon), SAMPLE_MS);
    this.sample(balloon);
    const loop = () => {
      this.raf = requestAnimationFrame(loop);
      const now = performance.now();
      if (this.dirty && now - this.lastDraw >= MIN_REDRAW_MS) this.draw(now);
    };
    this.raf = requestAnimationFrame(loop);
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    cancelAnimationFrame(this.raf);
  }

  private sample(balloon: BalloonLike | null): void {
    if (!balloon) return;
    const now = performance.now();
    const t = (now - this.t0) / 1000;
    const st = statsValues(balloon.stats());
    const mib = (v: number | undefined) => (typeof v === "number" ? v / MiB : null);
    const c = balloon.counters();
    const d = this.data;
    d.t.push(t);
    d.memTotal.push(mib(st.memtot));
    d.memFree.push(mib(st.memfree));
    d.memAvail.push(mib(st.avail));
    d.target.push(pagesToMiB(balloon.target));
    d.actual.push(pagesToMiB(balloon.actual));
    d.zeroed.push(c.bytesZeroed / MiB);
    const dt = this.last ? t - this.last.t : 0;
    d.reportsPerSec.push(this.last && dt > 0 ? (c.pagesReported - this.last.reported) / dt : 0);
    d.hintsPerSec.push(this.last && dt > 0 ? (c.pagesHinted - this.last.hinted) / dt : 0);
    this.last = { t, reported: c.pagesReported, hinted: c.pagesHinted };
    if (d.t.length > KEEP) for (const k of Object.keys(d) as (keyof ChartData)[]) d[k].splice(0, d[k].length - KEEP);
    this.dirty = true;
  }

  private draw(now: number): void {
    this.dirty = false;
    this.lastDraw = now;
    this.redraws++;
    SPECS.forEach((spec, i) => this.plots[i].setData(this.series(spec) as uPlot.AlignedData));
    this.writeTexts();
  }

  /** "MemTotal 245.1 MiB · MemAvailable ..." under each chart: its legend and its accessible value. */
  private writeTexts(): void {
    SPECS.forEach((spec, i) => {
      this.texts[i].replaceChildren(
        ...spec.series.map((s) => {
          const v = this.latest(s.key);
          const val = v === null ? "no data yet" : `${v.toFixed(spec.unit === "MiB" ? 1 : 0)} ${spec.unit}`;
          return h("span", { class: "chart-value" }, h("span", { class: "swatch", style: `background:${s.color}` }), `${s.label} `, h("b", { text: val }));
        }),
      );
    });
  }

  /** The newest value of a series (null when none yet). */
  latest(key: keyof ChartData): number | null {
    const a = this.data[key];
    return a.length ? (a[a.length - 1] as number | null) : null;
  }
}

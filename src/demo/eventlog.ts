/**
 * The virtqueue event log: inflate / deflate / report / hint / stats with page counts, and every
 * diagnostic. Bursts of one kind within 300 ms are merged into one row; rendering is batched.
 */
import { statsValues, type BalloonLike, type BalloonStatsLike } from "../embed/balloon-types.js";
import { $, h } from "./dom.js";

export const KINDS = ["inflate", "deflate", "report", "hint", "stats", "diagnostic", "features", "reset"] as const;
export type Kind = (typeof KINDS)[number];

export interface LogEntry {
  kind: Kind;
  time: number;
  count: number;
  pages: number;
  text: string;
  key: string;
}

const MAX_ROWS = 400;
const MERGE_MS = 300;

/** Page count carried by an event payload, whatever its shape. */
function pagesOf(payload: unknown): number | null {
  if (typeof payload === "number") return payload;
  if (Array.isArray(payload)) return payload.length;
  if (payload && typeof payload === "object") {
    const o = payload as Record<string, unknown>;
    for (const k of ["pages", "count", "numPages", "pageCount", "n"]) if (typeof o[k] === "number") return o[k] as number;
    for (const k of ["pfns", "ranges"]) if (Array.isArray(o[k])) return (o[k] as unknown[]).length;
  }
  return null;
}

function describe(kind: Kind, payload: unknown): string {
  if (payload === undefined || payload === null) return "";
  if (typeof payload !== "object") return String(payload);
  const o = payload as Record<string, unknown>;
  const num = (k: string) => (typeof o[k] === "number" ? (o[k] as number) : 0);
  const parts: string[] = [];
  switch (kind) {
    case "diagnostic":
      return [o.severity, o.kind, o.message].filter((x) => x !== undefined).join(" · ");
    case "stats": {
      const v = statsValues(payload as BalloonStatsLike);
      const f = (k: string) => (typeof v[k] === "number" ? `${k} ${(v[k] / 1048576).toFixed(1)}M` : "");
      return ["memtot", "memfree", "avail", "caches"].map(f).filter(Boolean).join(" ");
    }
    case "inflate":
    case "deflate":
      if (num("initialised")) parts.push(`${num("initialised")} initialised`);
      if (num("outOfRange")) parts.push(`${num("outOfRange")} out of range`);
      if (num("alreadyInflated")) parts.push(`${num("alreadyInflated")} already inflated`);
      if (num("notInflated")) parts.push(`${num("notInflated")} not inflated`);
      if (o.refused) parts.push("REFUSED");
      if (typeof o.inflatedPages === "number") parts.push(`balloon ${((num("inflatedPages") * 4096) / 1048576).toFixed(1)} MiB`);
      return parts.join(", ");
    case "report":
      return `${num("ranges")} range(s), filled ${(num("filledBytes") / 1048576).toFixed(2)} MiB`;
    case "hint":
      return `${o.phase ?? ""} cycle ${o.cycle ?? "?"} (cmd ${o.cmdId ?? "?"})${num("totalPages") ? `, ${num("totalPages")} pages this cycle` : ""}`;
    case "features":
      return `negotiated: ${Array.isArray(o.names) ? (o.names as string[]).join(" ") : "?"}${o.refused ? ` — refused: ${o.refused}` : ""}`;
    case "reset":
      return `device reset, ${num("inflatedPagesDropped")} inflated pages dropped`;
    default:
      try {
        const s = JSON.stringify(payload, (_k, val) => (typeof val === "bigint" ? `0x${val.toString(16)}` : val));
        return s.length > 160 ? s.slice(0, 157) + "…" : s;
      } catch {
        return String(payload);
      }
  }
}

export class EventLog {
  entries: LogEntry[] = [];
  readonly totals: Record<Kind, number> = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  private shown = new Set<Kind>(KINDS);
  private pendingRender = false;
  private t0 = performance.now();
  private readonly box = $("log");

  constructor() {
    const filters = $("log-filters");
    for (const kind of KINDS) {
      const input = h("input", { type: "checkbox", checked: true });
      input.addEventListener("change", () => {
        if (input.checked) this.shown.add(kind);
        else this.shown.delete(kind);
        this.render();
      });
      filters.append(h("label", { class: `chip k-${kind}` }, input, kind));
    }
    filters.append(
      Object.assign(h("button", { text: "Clear", title: "Clear the log" }), {
        onclick: () => {
          this.entries = [];
          this.render();
        },
      }),
    );
  }

  attach(balloon: BalloonLike): void {
    this.t0 = performance.now();
    // What happened while the guest booted, before there was a host object to listen to.
    const f = balloon.features;
    this.add("features", undefined, `during boot · negotiated: ${f.negotiatedNames.join(" ") || "nothing yet"}`);
    for (const [kind, n] of Object.entries(balloon.counters().diagnosticsByKind)) {
      this.add("diagnostic", undefined, `during boot · ${kind}${n > 1 ? ` ×${n}` : ""}`);
    }
    for (const kind of KINDS) balloon.on(kind, (payload: unknown) => this.add(kind, payload));
  }

  add(kind: Kind, payload?: unknown, text?: string): void {
    this.totals[kind]++;
    const now = performance.now();
    const pages = kind === "stats" || kind === "features" || kind === "reset" ? 0 : (pagesOf(payload) ?? 0);
    const phase = payload && typeof payload === "object" ? (payload as { phase?: string }).phase : undefined;
    const key = kind + (phase ?? "");
    const last = this.entries[this.entries.length - 1];
    if (kind !== "diagnostic" && last && last.key === key && now - last.time < MERGE_MS) {
      last.count++;
      last.pages += pages;
      last.time = now;
      last.text = text ?? describe(kind, payload);
    } else {
      this.entries.push({ kind, time: now, count: 1, pages, key, text: text ?? describe(kind, payload) });
      if (this.entries.length > MAX_ROWS) this.entries.splice(0, this.entries.length - MAX_ROWS);
    }
    if (!this.pendingRender) {
      this.pendingRender = true;
      setTimeout(() => {
        this.pendingRender = false;
        this.render();
      }, 150);
    }
  }

  private render(): void {
    const atBottom = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - 4;
    const rows = this.entries
      .filter((e) => this.shown.has(e.kind))
      .slice(-200)
      .map((e) => {
        const pages = e.pages ? `${e.pages} page${e.pages === 1 ? "" : "s"} (${((e.pages * 4096) / 1048576).toFixed(e.pages < 2560 ? 2 : 0)} MiB)` : "";
        const times = e.count > 1 ? `×${e.count}` : "";
        return h(
          "div",
          { class: `row k-${e.kind}` },
          h("span", { class: "t", text: ((e.time - this.t0) / 1000).toFixed(1) }),
          h("span", { class: "kind", text: e.kind }),
          h("span", { class: "n", text: times }),
          h("span", { class: "msg", text: [pages, e.text].filter(Boolean).join(" · ") }),
        );
      });
    this.box.replaceChildren(...rows);
    if (atBottom) this.box.scrollTop = this.box.scrollHeight;
  }
}

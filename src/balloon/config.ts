/**
 * The balloon's device configuration (virtio 1.2 §5.5.4), 16 bytes little-endian, as a table of fields:
 *
 * | offset | field                 | written by | on a driver write                                   |
 * |--------|-----------------------|------------|----------------------------------------------------|
 * | 0      | num_pages             | device     | `write-to-read-only-field`, ignored                 |
 * | 4      | actual                | driver     | committed when the write covers its top byte        |
 * | 8      | free_page_hint_cmd_id | device     | `write-to-read-only-field`, ignored                 |
 * | 12     | poison_val            | driver     | committed when the write covers its top byte        |
 *
 * Driver-written fields merge partial writes into a shadow and commit when the most significant byte is
 * written (the legacy rule, which Linux's byte-wise writes of old kernels rely on). A write across two
 * fields is diagnosed (`field-access-not-natural`) and changes neither.
 */
import { fillByteFor, type InflateTracker } from "./context.js";
import type { DiagnosticSink } from "./diagnostics.js";
import type { BalloonClock, BalloonEvents, TypedEmitter } from "./events.js";
import { hasFeature } from "./features.js";

export const BALLOON_CONFIG_SIZE = 16;

/** What the config needs from the device around it. */
export interface ConfigEnv {
  readonly diag: DiagnosticSink;
  readonly events: TypedEmitter<BalloonEvents>;
  readonly clock: BalloonClock;
  readonly ramPages: number;
  readonly tracker: InflateTracker;
  /** num_pages as the driver reads it (a config storm may show another value). */
  numPagesShown(numPages: number): number;
  /** free_page_hint_cmd_id. */
  hintCmdId(): number;
  /** DRIVER_OK seen, and the features that decide whether poison_val is in use. */
  live(): boolean;
  poisonFeatures(): bigint;
}

interface ConfigField {
  name: string;
  offset: number;
  read(): number;
  /** Driver-writable fields: take a committed value. Absent: read-only to the driver. */
  commit?(value: number): void;
}

export class BalloonConfig {
  numPages = 0;
  actualRaw = 0;
  actualShadow = 0;
  poisonVal = 0;
  poisonShadow = 0;
  private readonly fields: readonly ConfigField[];

  constructor(private readonly env: ConfigEnv) {
    this.fields = [
      { name: "num_pages", offset: 0, read: () => env.numPagesShown(this.numPages) },
      { name: "actual", offset: 4, read: () => this.actualRaw, commit: (v) => this.commitActual(v) },
      { name: "free_page_hint_cmd_id", offset: 8, read: () => env.hintCmdId() },
      { name: "poison_val", offset: 12, read: () => this.poisonVal, commit: (v) => this.commitPoison(v) },
    ];
  }

  read(offset: number, width: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < width; i++) {
      const f = this.fields[(offset + i) >> 2];
      const byte = f && offset + i >= 0 ? (f.read() >>> (8 * ((offset + i) & 3))) & 0xff : 0;
      v |= byte << (8 * i);
    }
    return v >>> 0;
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    const hit = this.fields.filter((f) => offset < f.offset + 4 && f.offset < offset + width);
    if (hit.length > 1) {
      // virtio 1.2 §4.1.3.1: one access per field; a write across two fields changes neither.
      this.env.diag.emit("field-access-not-natural", `${width}-byte write at config offset ${offset} (0x${(value >>> 0).toString(16)}) covers ${hit.map((f) => f.name).join(" + ")}; ignored`, { offset, width, value: value >>> 0 });
      return;
    }
    for (const f of hit) {
      const lo = Math.max(offset, f.offset), hi = Math.min(offset + width, f.offset + 4);
      if (lo >= hi) continue;
      if (!f.commit) {
        this.env.diag.emit("write-to-read-only-field", `driver wrote ${width} byte(s) at config offset ${offset} (0x${(value >>> 0).toString(16)}) into ${f.name}, which is read-only to the driver; ignored`, { field: f.name, offset, width, value: value >>> 0 });
        continue;
      }
      const isActual = f.name === "actual";
      let shadow = isActual ? this.actualShadow : this.poisonShadow;
      for (let at = lo; at < hi; at++) {
        const shift = 8 * (at - f.offset);
        shadow = ((shadow & ~(0xff << shift)) | (((value >>> (8 * (at - offset))) & 0xff) << shift)) >>> 0;
      }
      if (isActual) this.actualShadow = shadow;
      else this.poisonShadow = shadow;
      if (hi === f.offset + 4) f.commit(shadow);
    }
  }

  /** Device reset: the driver-written fields go back to 0 (num_pages is the host's and stays). */
  reset(): void {
    this.actualRaw = this.actualShadow = 0;
    this.poisonVal = this.poisonShadow = 0;
  }

  /** `actual` clamped to RAM (the accounting value). */
  get actual(): number {
    return Math.min(this.actualRaw, this.env.ramPages);
  }

  private commitActual(raw: number): void {
    const { diag, ramPages, tracker } = this.env;
    const previous = this.actualRaw;
    this.actualRaw = raw;
    const detail = { actual: raw, previous, target: this.numPages, ramPages, inflatedPages: tracker.count };
    if (raw > ramPages) {
      diag.emit("actual-above-ram", `driver wrote actual = ${raw} pages, more than guest RAM (${ramPages} pages); recorded, clamped to ${ramPages} for accounting`, detail);
    } else if (raw > tracker.count) {
      diag.emit("actual-above-inflated", `driver wrote actual = ${raw} pages, but only ${tracker.count} pages are in the balloon by the device's tracking`, detail);
    }
    if (raw > this.numPages && raw > previous) {
      diag.emit("actual-above-target", `driver raised actual to ${raw} pages, above the target num_pages = ${this.numPages}`, detail);
    }
    this.env.events.emit("actual", {
      time: this.env.clock.now(), pages: this.actual, raw, previous, target: this.numPages, inflatedPages: tracker.count,
    });
  }

  private commitPoison(v: number): void {
    const previous = this.poisonVal;
    this.poisonVal = v;
    if (!hasFeature(this.env.poisonFeatures(), "PAGE_POISON")) {
      this.env.diag.emit("poison-val-without-feature", `driver wrote poison_val = 0x${v.toString(16)} but PAGE_POISON is not negotiated; stored, unused`, { poisonVal: v });
      return;
    }
    if (this.env.live() && v !== previous) {
      this.env.diag.emit("poison-val-changed-while-live", `driver changed poison_val from 0x${previous.toString(16)} to 0x${v.toString(16)} while DRIVER_OK is set; the new value is used`, { poisonVal: v, previous });
    }
    this.checkPoisonPattern();
  }

  checkPoisonPattern(): void {
    if (fillByteFor(1n << 4n, this.poisonVal) === null) {
      this.env.diag.emit("poison-val-not-byte-pattern", `poison_val 0x${this.poisonVal.toString(16)} is not one repeated byte: pages will be left unmodified and never reported as initialised`, { poisonVal: this.poisonVal });
    }
  }
}

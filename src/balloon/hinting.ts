/**
 * Free page hinting (FREE_PAGE_HINT, bit 3), any number of cycles (virtio 1.2 §5.5.6.4).
 *
 * Host side: `start()` picks a new command ID (2, 3, 4, ... wrapping back to 2; 0 = STOP and 1 = DONE are
 * reserved; an ID is never reused before the driver has sent STOP) and raises a config interrupt. `stop()`
 * shows STOP in free_page_hint_cmd_id (hints no longer wanted, driver keeps its hinted pages), `done()`
 * shows DONE (the device no longer needs the hinted pages: the driver releases them). Initially DONE.
 *
 * Driver side, on the free-page queue: a 4-byte readable buffer with the command ID it is answering
 * (the current one = cycle started; STOP = the driver finished its round), then device-writable buffers,
 * each a range of hinted pages (Linux: 4 MiB blocks). Hinted pages are undefined until the guest writes
 * them again (seed 003); the device handles them on receipt — while the guest is stopped in the notify:
 *  - without PAGE_POISON: zeroed (snapshots shrink; `zeroFreedPages: false` leaves them);
 *  - with PAGE_POISON: filled with poison_val's byte (the device may only leave them or write poison_val),
 *    left alone if poison_val is not a repeated byte.
 * Pages arriving outside a started cycle, or after the host said STOP/DONE, are ignored (the device MUST
 * ignore pages provided with a command ID that does not match the current value).
 *
 * `autoDone` (default true): when the driver ends the round with STOP, the device immediately shows DONE,
 * because it processed every hint synchronously and needs none of the pages. Linux keeps every hinted
 * page (all the guest's free memory, in order-10 blocks) until it sees DONE.
 */
import type { DescriptorChain } from "../virtio/chain.js";
import { readSegments } from "../memory/access.js";
import { countFill, PAGE_SIZE, type HandlerContext } from "./context.js";
import { hasFeature } from "./features.js";
import { checkRanges } from "./ranges.js";
import type { HintPhase } from "./events.js";

export const CMD_ID_STOP = 0;
export const CMD_ID_DONE = 1;
export const CMD_ID_MIN = 2;

/**
 * Host view of the cycle:
 *  idle       no cycle yet (config shows DONE)
 *  requested  host published a new ID; the driver has not answered yet
 *  started    the driver sent the current ID; hints are being accepted
 *  driver-stopped  the driver sent STOP (ran out of pages); hints no longer accepted
 *  stopped    the host set STOP
 *  done       the host set DONE (driver releases hinted pages)
 */
export type HintStatus = "idle" | "requested" | "started" | "driver-stopped" | "stopped" | "done";

export interface HintingState {
  status: HintStatus;
  /** Last ID issued (0 before the first cycle). */
  cmdId: number;
  /** Cycles started by the host. */
  cycle: number;
  /** Pages hinted in the current cycle. */
  cyclePages: number;
  /** What free_page_hint_cmd_id shows. */
  configValue: number;
}

export class Hinting {
  private s: HintingState = { status: "idle", cmdId: 0, cycle: 0, cyclePages: 0, configValue: CMD_ID_DONE };

  constructor(
    private readonly ctx: HandlerContext,
    /** Raise a configuration-change interrupt (only when the device is live). */
    private readonly configChanged: () => void,
    private readonly autoDone = true,
  ) {}

  get state(): Readonly<HintingState> {
    return this.s;
  }

  /** Value of free_page_hint_cmd_id in the device config. */
  get configValue(): number {
    return this.s.configValue;
  }

  private emit(phase: HintPhase, pages = 0): void {
    this.ctx.events.emit("hint", {
      time: this.ctx.clock.now(), phase, cmdId: this.s.cmdId, cycle: this.s.cycle, pages, totalPages: this.s.cyclePages,
    });
  }

  /** Host: begin a new cycle. Returns the new command ID. */
  start(): number {
    const next = this.s.cmdId >= 0xffffffff || this.s.cmdId < CMD_ID_MIN ? CMD_ID_MIN : this.s.cmdId + 1;
    this.s = { status: "requested", cmdId: next, cycle: this.s.cycle + 1, cyclePages: 0, configValue: next };
    this.ctx.counters.hintCycles++;
    this.emit("requested");
    this.configChanged();
    return next;
  }

  /** Host: STOP — hints no longer wanted; the driver keeps its hinted pages until DONE. */
  stop(): void {
    this.announce(CMD_ID_STOP, "stopped");
  }

  /** Host: DONE — the device no longer needs the hinted pages; the driver releases them. */
  done(): void {
    this.announce(CMD_ID_DONE, "done");
  }

  /** Put a special command ID in the config (once) and tell the driver. */
  private announce(cmdId: typeof CMD_ID_STOP | typeof CMD_ID_DONE, status: "stopped" | "done"): void {
    if (this.s.configValue === cmdId) return;
    this.s.status = status;
    this.s.configValue = cmdId;
    this.emit(status);
    this.configChanged();
  }

  /** Device reset: the driver is gone, its hinted pages with it. IDs keep counting (never reused). */
  reset(): void {
    this.s = { ...this.s, status: "idle", cyclePages: 0, configValue: CMD_ID_DONE };
  }

  save(): HintingState {
    return { ...this.s };
  }

  restore(s: HintingState): void {
    this.s = { ...s };
  }

  /** One chain on the free-page queue; returns the used length (always 0: the device writes nothing). */
  handle(chain: DescriptorChain, queue: number): number {
    this.ctx.counters.requests.hint++;
    if (chain.readable.length > 0) this.commandId(chain, queue);
    if (chain.writable.length > 0) this.pages(chain, queue);
    return 0;
  }

  private commandId(chain: DescriptorChain, queue: number): void {
    const { ctx } = this;
    if (chain.readableBytes !== 4) {
      ctx.diag.emit("hint-cmd-id-bad-size", `free-page queue (head ${chain.head}): command ID buffer is ${chain.readableBytes} bytes, not 4; ignored`, { head: chain.head, readableBytes: chain.readableBytes }, queue);
      return;
    }
    const b = readSegments(ctx.mem, chain.readable, 4);
    const id = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    if (id === CMD_ID_STOP) {
      if (this.s.status === "started" || this.s.status === "requested") {
        this.s.status = "driver-stopped";
        this.emit("driver-stopped");
        if (this.autoDone) this.done();
      }
      return;
    }
    if (id !== this.s.cmdId || this.s.configValue !== this.s.cmdId) {
      ctx.diag.emit("hint-cmd-id-mismatch", `free-page queue (head ${chain.head}): command ID ${id} is not the current one (${this.s.configValue}); its hints will be ignored`, { head: chain.head, id, current: this.s.configValue }, queue);
      return;
    }
    if (this.s.status === "started" || this.s.status === "driver-stopped") {
      ctx.diag.emit("hint-cmd-id-repeated", `free-page queue (head ${chain.head}): command ID ${id} sent twice in one cycle`, { head: chain.head, id }, queue);
      return;
    }
    if (this.s.status === "requested") {
      this.s.status = "started";
      this.emit("started");
    }
  }

  private pages(chain: DescriptorChain, queue: number): void {
    const { ctx } = this;
    const live = this.s.status === "started" && this.s.configValue === this.s.cmdId;
    if (!live) {
      // Normal after STOP/DONE (hints in flight); a driver error when no cycle was ever started by it.
      if (this.s.status === "requested" || this.s.status === "idle") {
        ctx.diag.emit("hint-pages-ignored", `free-page queue (head ${chain.head}): ${chain.writableBytes} bytes of hints before the driver sent the current command ID; ignored`, { head: chain.head, bytes: chain.writableBytes, status: this.s.status }, queue);
      }
      this.emit("ignored", Math.floor(chain.writableBytes / PAGE_SIZE));
      return;
    }
    if (!checkRanges(ctx, chain, queue, "hint")) {
      this.emit("ignored", 0);
      return;
    }
    ctx.work.units += Math.ceil(chain.writableBytes / PAGE_SIZE);
    const fill = ctx.fillByte();
    const poison = hasFeature(ctx.negotiated(), "PAGE_POISON");
    const doFill = fill !== null && (poison || ctx.zeroFreedPages);
    if (doFill) {
      for (const s of chain.writable) {
        if (ctx.hot.fillRange(s.addr, s.len, fill)) countFill(ctx.counters, fill, s.len);
      }
    }
    const pages = Math.floor(chain.writableBytes / PAGE_SIZE);
    this.s.cyclePages += pages;
    ctx.counters.pagesHinted += pages;
    this.emit("pages", pages);
  }
}

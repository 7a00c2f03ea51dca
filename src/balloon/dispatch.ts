/**
 * The queue dispatcher: what one notify does. Pops chains from the notified queue, hands each to its
 * role's handler (inflate.ts, reporting.ts, hinting.ts, stats.ts), and writes the used elements and one
 * interrupt through the delivery faults. Guest input never throws out of here: malformed chains come back
 * used with length 0 and a diagnostic; a broken avail ring (idx jump) sets DEVICE_NEEDS_RESET.
 *
 * Work is bounded: handlers add the guest pages they may scan or fill to `work.units` (+1 per chain);
 * once a notify has done NOTIFY_WORK_BUDGET, the rest of the queue runs in the next host task.
 */
import type { VirtioTransportHandle } from "../virtio/device-backend.js";
import { ChainError, type DescriptorChain, type Virtqueue } from "../virtio/virtqueue.js";
import type { WorkMeter } from "./context.js";
import type { DiagnosticSink } from "./diagnostics.js";
import type { BalloonClock } from "./events.js";
import type { QueueRole } from "./features.js";
import type { FaultInjector } from "./faults.js";

/**
 * Work one notify may do before the rest of its queue is left to the next host task: 2048 pages (8 MiB
 * of fill, a few ms). Linux's largest request is 256 PFNs (1 MiB), so a real driver never reaches it;
 * a chain is never split, so one notify costs at most this plus one chain (1024 PFNs, or one report of
 * non-overlapping ranges, at most guest RAM).
 */
export const NOTIFY_WORK_BUDGET = 2048;

/** A used element waiting to be written. */
export interface Completion { head: number; used: number }

/** One chain's handler: the used length, or null when the device keeps the buffer (stats). */
export type ChainHandler = (chain: DescriptorChain, index: number) => number | null;

/** The queues in force (set at DRIVER_OK / restore, cleared on reset). */
export interface LiveQueues {
  roles: readonly QueueRole[];
  queues: readonly Virtqueue[];
}

export class QueueDispatcher {
  private live: LiveQueues | null = null;
  /** Queues whose remaining chains run in a later host task. */
  private readonly deferred = new Map<number, unknown>();
  readonly workSeen = { last: 0, max: 0, deferred: 0 };

  constructor(
    private readonly handlers: Readonly<Record<QueueRole, ChainHandler>>,
    private readonly work: WorkMeter,
    private readonly diag: DiagnosticSink,
    private readonly clock: BalloonClock,
    private readonly faults: FaultInjector,
    private readonly transport: () => VirtioTransportHandle | null,
  ) {}

  /** The device went live with these queues (null: not live). Pending continuations are dropped. */
  setLive(live: LiveQueues | null): void {
    this.cancelDeferred();
    this.live = live;
  }

  get isLive(): boolean {
    return this.live !== null;
  }

  get roles(): readonly QueueRole[] {
    return this.live?.roles ?? [];
  }

  /** The live, enabled queue with `role`, or null. */
  queueOf(role: QueueRole): { index: number; queue: Virtqueue } | null {
    if (!this.live) return null;
    const index = this.live.roles.indexOf(role);
    const queue = index >= 0 ? this.live.queues[index] : undefined;
    return queue && queue.enabled ? { index, queue } : null;
  }

  notify(index: number): void {
    const role = this.live?.roles[index];
    const q = this.live?.queues[index];
    if (!role || !q || !q.enabled) {
      this.diag.emit("notify-disabled-queue", `notify for queue ${index}, which is not live on this device${this.live ? "" : " (not activated)"}`, { index }, index);
      return;
    }
    // This notify takes up the queue now: a continuation still armed for it would later run on a
    // drained queue, or take chains made available without a notify (a restored device has no such timer).
    const armed = this.deferred.get(index);
    if (armed !== undefined) {
      this.clock.clearTimeout(armed);
      this.deferred.delete(index);
    }
    const done: Completion[] = [];
    this.work.units = 0;
    for (;;) {
      if (this.work.units >= NOTIFY_WORK_BUDGET) {
        // Whatever the driver queued, one notify does bounded work; the rest runs in the next host task.
        if (q.pending() > 0) {
          this.workSeen.deferred++;
          this.defer(index);
        }
        break;
      }
      this.work.units++;
      let chain: DescriptorChain | null;
      try {
        chain = q.pop();
      } catch (e) {
        if (e instanceof ChainError) {
          this.diag.emit(e.kind, e.message, { head: e.head, chainKind: e.kind }, index);
          if (e.head >= 0) {
            // A head that is not a descriptor index (head-out-of-range) cannot be given back.
            if (e.head < q.size) done.push({ head: e.head, used: 0 });
            continue;
          }
          // The ring itself is broken (avail idx jump): nothing sane can be popped any more.
          this.transport()?.needsReset(e.message);
          break;
        }
        this.internalError(e, index);
        break;
      }
      if (!chain) break;
      if (role === "inflate" && this.faults.takesResetMidInflate(index, chain.head)) {
        this.transport()?.needsReset(`fault resetMidInflate: inflate request (head ${chain.head}) not completed`);
        break;
      }
      let used: number | null = 0;
      try {
        used = this.handlers[role](chain, index);
      } catch (e) {
        this.internalError(e, index);
        used = 0;
      }
      if (used === null) continue;
      if ((role === "inflate" || role === "deflate") && this.faults.drops(index, chain.head)) continue;
      done.push({ head: chain.head, used });
    }
    this.complete(index, q, done);
    this.workSeen.last = this.work.units;
    this.workSeen.max = Math.max(this.workSeen.max, this.work.units);
  }

  /** Write used elements and interrupt once — through the delivery faults (delay, withheld interrupt). */
  complete(index: number, q: Virtqueue, done: readonly Completion[]): void {
    if (done.length === 0) return;
    this.faults.deliver(index, done.length, () => {
      let pushed = false;
      for (const c of done) pushed = this.safePush(q, c.head, c.used) || pushed;
      if (pushed && !this.faults.withholds(index)) this.transport()?.interruptQueue(index);
    });
  }

  /** After a restore: take up chains the driver had queued, as a notify would (in a later host task). */
  resume(): void {
    this.live?.queues.forEach((q, i) => {
      if (q.enabled && q.pending() > 0) this.defer(i);
    });
  }

  /** Continue queue `index` in a later host task (once per queue until it runs). */
  private defer(index: number): void {
    if (this.deferred.has(index)) return;
    this.deferred.set(index, this.clock.setTimeout(() => {
      this.deferred.delete(index);
      if (this.live) this.notify(index);
    }, 1));
  }

  cancelDeferred(): void {
    for (const t of this.deferred.values()) this.clock.clearTimeout(t);
    this.deferred.clear();
  }

  private safePush(q: Virtqueue, head: number, used: number): boolean {
    try {
      q.push(head, used);
      return true;
    } catch (e) {
      this.internalError(e, q.index);
      return false;
    }
  }

  private internalError(e: unknown, queue: number): void {
    const msg = e instanceof Error ? e.message : String(e);
    this.diag.emit("device-internal-error", `queue ${queue}: ${msg}`, { error: msg }, queue);
  }
}

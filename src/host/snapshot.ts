/**
 * A balloon's part of a v86 snapshot, restored as ONE unit: transport registers, every queue, and the
 * device. `parseBalloonSlot` reads and checks all of it (each half on its own, then the facts that need
 * both: the device is live exactly when the transport is, both hold the same features, a held stats
 * buffer is a head of the stats queue) into plain values and changes nothing; `commitBalloonState`
 * then applies it and cannot fail. A refusal is one `StateError` with the field path, and the live VM
 * is left exactly as it was (attach.ts runs the parse before v86 restores anything).
 *
 * `checkBalloonSnapshot` runs the same gate on a v86 state file without an emulator, for a loader that
 * wants to refuse a state (e.g. from a URL) before handing it to v86.
 */
import type { BalloonFaults } from "../balloon/context.js";
import type { BalloonDevice } from "../balloon/device.js";
import { hasFeature, offeredFeatureBits, QUEUE_MAX_SIZE, queueLayout, validateBalloonFeatures, type FeatureOffer } from "../balloon/features.js";
import { parseState, type ParsedState, type StateLimits } from "../balloon/persist.js";
import { readStateSlot } from "../v86/adapter.js";
import { parseTransportState, STATUS, TRANSPORT_FEATURES, type TransportLimits, type TransportState, type VirtioPciTransport } from "../virtio/pci-transport.js";
import { StateError } from "../virtio/state.js";

export { StateError } from "../virtio/state.js";

export interface BalloonStateLimits {
  transport: TransportLimits;
  device: StateLimits;
}

export interface ParsedBalloonState {
  transport: TransportState;
  device: ParsedState;
}

/** Our slot in v86's state: the JSON of both halves (bitmap left out) and the inflated-page bitmap. */
export function saveBalloonSlot(transport: VirtioPciTransport, device: BalloonDevice): unknown[] {
  const { inflatedBitmap, ...rest } = device.saveState();
  return [JSON.stringify({ transport: transport.saveState(), device: rest }), inflatedBitmap];
}

/** The limits of a live balloon. */
export function liveLimits(transport: VirtioPciTransport, device: BalloonDevice): BalloonStateLimits {
  return {
    transport: {
      offered: device.offeredFeatures(),
      validate: (f) => device.validateFeatures(f, { dryRun: true }),
      queueCount: (f) => device.queueCount(f),
      queues: transport.queues.map((q) => ({ index: q.index, maxSize: q.maxSize, memSize: q.memSize })),
    },
    device: device.stateLimits,
  };
}

/** What a snapshot is checked against when no balloon exists yet: the options the VM will be started with. */
export interface SnapshotTarget {
  /** Guest RAM of the VM the state is for, bytes. */
  memoryBytes: number;
  /** The balloon's `features` option (same meaning as BalloonOptions.features). */
  features?: FeatureOffer;
  /** The balloon's `faults` option (only hugeNumPages and offerUnchecked change what is valid). */
  faults?: BalloonFaults;
}

export function limitsFor(target: SnapshotTarget): BalloonStateLimits {
  const offered = offeredFeatureBits(target.features, target.faults?.offerUnchecked === true);
  const queues = queueLayout(offered).map((_, index) => ({ index, maxSize: QUEUE_MAX_SIZE, memSize: target.memoryBytes }));
  return {
    transport: {
      offered,
      validate: (f) => validateBalloonFeatures(f, offered),
      queueCount: (f) => queueLayout(f).length,
      queues,
    },
    device: { ramPages: Math.floor(target.memoryBytes / 4096), offered, hugeNumPages: target.faults?.hugeNumPages === true },
  };
}

/** Parse and check our slot (null: the state has none). Throws StateError; changes nothing. */
export function parseBalloonSlot(slot: unknown[] | null, limits: BalloonStateLimits): ParsedBalloonState {
  if (slot === null) throw new StateError("balloon", "the state was saved without a balloon device; this VM has one");
  if (slot.length !== 2 || typeof slot[0] !== "string") throw new StateError("balloon", "not [json, bitmap]");
  let json: unknown;
  try {
    json = JSON.parse(slot[0]);
  } catch {
    throw new StateError("balloon", "not JSON");
  }
  const top = json as { transport?: unknown; device?: unknown } | null;
  if (typeof top !== "object" || top === null || Array.isArray(top)) throw new StateError("balloon", "not an object");
  const transport = parseTransportState(top.transport, "transport", limits.transport);
  const deviceRaw = typeof top.device === "object" && top.device !== null ? { ...top.device, inflatedBitmap: slot[1] } : top.device;
  const device = parseState(deviceRaw, limits.device, "device");

  const live = (transport.status & (STATUS.DRIVER_OK | STATUS.FEATURES_OK)) === (STATUS.DRIVER_OK | STATUS.FEATURES_OK);
  if (device.active !== live) throw new StateError("device.active", `${device.active}, but the transport status 0x${transport.status.toString(16)} says ${live ? "live" : "not live"}`);
  const negotiated = BigInt(transport.negotiated) & ~TRANSPORT_FEATURES;
  if (device.active && device.negotiated !== negotiated) {
    throw new StateError("device.negotiated", `0x${device.negotiated.toString(16)}, the transport negotiated 0x${negotiated.toString(16)}`);
  }
  if (transport.status & STATUS.FEATURES_OK && device.accepted !== negotiated) {
    throw new StateError("device.accepted", `0x${device.accepted.toString(16)}, the transport negotiated 0x${negotiated.toString(16)}`);
  }
  const held = device.stats.heldHead;
  if (held !== null) {
    const q = transport.queues[queueLayout(device.negotiated).indexOf("stats")];
    if (!q?.enabled || held >= q.size) throw new StateError("device.stats.heldHead", `${held} is not a head of the live stats queue (size ${q?.size ?? 0})`);
  }
  for (const k of Object.keys(device.faults.chainsSeen)) {
    if (Number(k) >= transport.queues.length) throw new StateError(`device.faults.chainsSeen.${k}`, "no such queue");
  }
  return { transport, device };
}

/** Apply a parsed state (cannot fail), then pick up chains the driver queued but the device had not taken. */
export function commitBalloonState(s: ParsedBalloonState, transport: VirtioPciTransport, device: BalloonDevice): void {
  transport.applyState(s.transport);
  device.applyState(s.device, transport.queues.slice(0, transport.numQueues));
  device.resumeQueues();
}

export interface SnapshotCheck {
  /** false only for a zstd-compressed state: v86 must decompress it; its restore is still gated. */
  checked: boolean;
  /** Features in force in the saved balloon (names), when checked. */
  negotiated?: string[];
  /** The saved balloon was live (driver past DRIVER_OK). */
  live?: boolean;
}

/**
 * Check a v86 state file's balloon part for a VM started with `target`, before it is restored.
 * Throws StateError (path "v86" when the file itself is not a v86 state).
 */
export function checkBalloonSnapshot(file: ArrayBuffer, target: SnapshotTarget): SnapshotCheck {
  const read = readStateSlot(file);
  if (read === "compressed") return { checked: false };
  if (typeof read === "string") throw new StateError("v86", read);
  const s = parseBalloonSlot(read.slot, limitsFor(target));
  const names = (["STATS_VQ", "PAGE_REPORTING", "PAGE_POISON", "FREE_PAGE_HINT", "DEFLATE_ON_OOM", "MUST_TELL_HOST", "DEVICE_INIT_REPORTED", "DEVICE_INIT_ON_INFLATE"] as const)
    .filter((n) => hasFeature(s.device.negotiated, n));
  return { checked: true, negotiated: names, live: s.device.active };
}

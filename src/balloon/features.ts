/**
 * virtio-balloon feature bits (virtio 1.2 §5.5.3, plus bits 6/7 from the virtio balloon DEVICE_INIT
 * patch v3), what the host offers, and the device's feature rules — all in one place.
 *
 * The transport already refuses bits that were never offered; `validateBalloonFeatures` repeats that
 * rule so this file is the single list of every reason FEATURES_OK may stay clear.
 */

import { FEATURES, type FeatureSpecName } from "../vocabulary.js";

/** Bit numbers by spec name (the optional bits come from the project's vocabulary). */
export const BALLOON_F = {
  ...(Object.fromEntries(FEATURES.map((f) => [f.spec, f.bit])) as Record<FeatureSpecName, number>),
  VERSION_1: 32,
} as const;

export type BalloonFeatureName = keyof typeof BALLOON_F;

/** The balloon-specific bits the host may switch on or off (VERSION_1 is always offered). */
export type OptionalFeatureName = FeatureSpecName;

export const OPTIONAL_FEATURES: readonly OptionalFeatureName[] = FEATURES.map((f) => f.spec);

/** `1n << bit` for a named feature. */
export function featureBit(name: BalloonFeatureName): bigint {
  return 1n << BigInt(BALLOON_F[name]);
}

export function hasFeature(features: bigint, name: BalloonFeatureName): boolean {
  return (features & featureBit(name)) !== 0n;
}

const NAME_BY_BIT = new Map<number, string>(
  (Object.keys(BALLOON_F) as BalloonFeatureName[]).map((n) => [BALLOON_F[n], n]),
);

/** Human-readable list of set bits, e.g. `["STATS_VQ", "VERSION_1", "bit 40"]`. */
export function describeFeatures(bits: bigint): string[] {
  const out: string[] = [];
  for (let b = 0; b < 64; b++) {
    if ((bits >> BigInt(b)) & 1n) out.push(NAME_BY_BIT.get(b) ?? `bit ${b}`);
  }
  return out;
}

/**
 * Which optional bits the host offers. Every bit defaults to offered (`true`).
 *
 * Notes on the defaults (see also docs): with DEFLATE_ON_OOM negotiated a Linux guest does not lower
 * MemTotal when inflating (only MemFree); QEMU never offers MUST_TELL_HOST; bits 6/7 are from a spec
 * patch (v3, 2026-05) and only a patched Linux driver accepts them — switch them off to model a device
 * without them. A driver that does not understand a bit simply does not accept it.
 */
export type FeatureOffer = Partial<Record<OptionalFeatureName, boolean>>;

/**
 * Features that require another (virtio 1.2 §2.2.2: a device MUST NOT offer a feature which requires
 * another feature which was not offered). Bit 6 requires bit 5 (DEVICE_INIT patch v3, Feature bits).
 */
export const FEATURE_REQUIRES: Readonly<Partial<Record<OptionalFeatureName, OptionalFeatureName>>> = {
  DEVICE_INIT_REPORTED: "PAGE_REPORTING",
};

const REQUIRES = Object.entries(FEATURE_REQUIRES) as [OptionalFeatureName, OptionalFeatureName][];

/**
 * The bits offered for `offer` (every bit defaults to on), with dependencies enforced (see offerProblems)
 * unless `unchecked` (the offerUnchecked fault).
 */
export function offeredFeatureBits(offer: FeatureOffer = {}, unchecked = false): bigint {
  let bits = featureBit("VERSION_1");
  for (const name of OPTIONAL_FEATURES) {
    if (offer[name] ?? true) bits |= featureBit(name);
  }
  if (unchecked) return bits;
  for (const [name, needs] of REQUIRES) {
    if (!hasFeature(bits, needs)) bits &= ~featureBit(name);
  }
  return bits;
}

/** Features the host asked for explicitly that are not offered because a feature they need is off. */
export function offerProblems(offer: FeatureOffer = {}): string[] {
  const out: string[] = [];
  for (const [name, needs] of REQUIRES) {
    if (offer[name] === true && offer[needs] === false) out.push(`${name} requires ${needs}, which is switched off: ${name} is not offered`);
  }
  return out;
}

/** Offered features whose required feature is not offered ("NAME requires NEEDS"); empty for a correct offer. */
export function offeredWithoutRequirement(offered: bigint): { feature: OptionalFeatureName; requires: OptionalFeatureName }[] {
  return REQUIRES.filter(([name, needs]) => hasFeature(offered, name) && !hasFeature(offered, needs)).map(([feature, requires]) => ({ feature, requires }));
}

/** One device rule about an accepted feature set; `check` returns true when the set breaks it. */
export interface FeatureRule {
  name: string;
  /** Where the rule comes from. */
  section: string;
  check(accepted: bigint, offered: bigint): boolean;
  message(accepted: bigint, offered: bigint): string;
}

export const FEATURE_RULES: readonly FeatureRule[] = [
  {
    name: "version-1-required",
    section: "virtio 1.2 §6.1: a device that offers VIRTIO_F_VERSION_1 MAY fail FEATURES_OK if it is not accepted (this device has no legacy interface)",
    check: (a) => !hasFeature(a, "VERSION_1"),
    message: () => "VIRTIO_F_VERSION_1 (bit 32) not accepted: this is a modern-only device (no legacy interface)",
  },
  {
    name: "only-offered-bits",
    section: "virtio 1.2 §2.2.1: the driver MUST NOT accept a feature which the device did not offer",
    check: (a, o) => (a & ~o) !== 0n,
    message: (a, o) => `accepted bits never offered: ${describeFeatures(a & ~o).join(", ")}`,
  },
  {
    name: "init-reported-requires-reporting",
    section: "balloon §Feature bit requirements (spec patch v3): VIRTIO_BALLOON_F_DEVICE_INIT_REPORTED requires VIRTIO_BALLOON_F_PAGE_REPORTING",
    check: (a) => hasFeature(a, "DEVICE_INIT_REPORTED") && !hasFeature(a, "PAGE_REPORTING"),
    message: () => "DEVICE_INIT_REPORTED (bit 6) accepted without PAGE_REPORTING (bit 5): bit 6 requires bit 5",
  },
];

/** The reason to refuse FEATURES_OK (all broken rules, by name), or null. */
export function validateBalloonFeatures(accepted: bigint, offered: bigint): string | null {
  const broken = FEATURE_RULES.filter((r) => r.check(accepted, offered));
  if (broken.length === 0) return null;
  return broken.map((r) => `${r.name}: ${r.message(accepted, offered)}`).join("; ");
}

// ---- queues ----------------------------------------------------------------------------------

export type QueueRole = "inflate" | "deflate" | "stats" | "free-page" | "reporting";

/**
 * Queue roles by index, in Linux's numbering: inflate 0, deflate 1, then stats, free-page and reporting,
 * each present only when its feature is in `features` (so without STATS_VQ and FREE_PAGE_HINT the
 * reporting queue is 2). The transport calls this with the offered features before FEATURES_OK and with
 * the negotiated ones after.
 */
export function queueLayout(features: bigint): QueueRole[] {
  const roles: QueueRole[] = ["inflate", "deflate"];
  if (hasFeature(features, "STATS_VQ")) roles.push("stats");
  if (hasFeature(features, "FREE_PAGE_HINT")) roles.push("free-page");
  if (hasFeature(features, "PAGE_REPORTING")) roles.push("reporting");
  return roles;
}

/**
 * Maximum queue size. Every queue gets the same maximum, because which role index i has depends on the
 * features negotiated later (the transport builds its queues from the offered set). Linux needs the
 * reporting queue to hold >= 32 entries (PAGE_REPORTING_CAPACITY); 256 also covers its 256-PFN batches.
 */
export const QUEUE_MAX_SIZE = 256;
export const REPORTING_MIN_QUEUE_SIZE = 32;

/**
 * The project's one public vocabulary: feature names, event names, fault names and option names,
 * defined once here and imported by the device's feature table, the host API, the element, mount(),
 * the Node API, the harness CLI and the demo. A leaf module (imports nothing), so every layer may use it.
 */

// ---- features ---------------------------------------------------------------------------------

/** One optional virtio-balloon feature bit (virtio 1.2 §5.5.3; bits 6/7: virtio balloon DEVICE_INIT patch v3). */
export interface FeatureInfo {
  bit: number;
  /** Public short name: `features="..."`, `# features:` descriptors, `--features`, the demo's chips. */
  name: FeatureName;
  /** Spec name without the VIRTIO_BALLOON_F_ prefix (the device's own key). */
  spec: FeatureSpecName;
  /** Other spellings accepted on input (never printed). */
  aliases: readonly string[];
  /** One line for tooltips and `--help`. */
  help: string;
}

export const FEATURES = [
  { bit: 0, name: "must-tell-host", spec: "MUST_TELL_HOST", aliases: ["tell-host"], help: "guest tells the host before reusing deflated pages" },
  { bit: 1, name: "stats", spec: "STATS_VQ", aliases: ["stats-vq"], help: "memory statistics queue (MemFree, MemAvailable, ...)" },
  { bit: 2, name: "deflate-on-oom", spec: "DEFLATE_ON_OOM", aliases: ["oom"], help: "guest deflates the balloon instead of OOM-killing" },
  { bit: 3, name: "hinting", spec: "FREE_PAGE_HINT", aliases: ["hint", "free-page-hint"], help: "free page hinting cycles started by the host" },
  { bit: 4, name: "poison", spec: "PAGE_POISON", aliases: ["page-poison"], help: "guest tells the host its free-page poison value" },
  { bit: 5, name: "reporting", spec: "PAGE_REPORTING", aliases: ["page-reporting"], help: "guest reports freed 4 MiB blocks, the device zeroes them" },
  { bit: 6, name: "init-reported", spec: "DEVICE_INIT_REPORTED", aliases: ["device-init-reported", "bit6"], help: "device re-initialises reported pages" },
  { bit: 7, name: "init-on-inflate", spec: "DEVICE_INIT_ON_INFLATE", aliases: ["device-init-on-inflate", "bit7"], help: "device re-initialises inflated pages" },
] as const satisfies readonly { bit: number; name: string; spec: string; aliases: readonly string[]; help: string }[];

export type FeatureName = (typeof FEATURES)[number]["name"];
export type FeatureSpecName = (typeof FEATURES)[number]["spec"];

/**
 * What the element, mount() and the demo offer when no features are given: all but poison and
 * deflate-on-oom (with it a Linux guest keeps MemTotal while inflating, which hides what the balloon did).
 */
export const DEFAULT_FEATURES: readonly FeatureName[] = ["must-tell-host", "stats", "hinting", "reporting", "init-reported", "init-on-inflate"];

/**
 * The feature for any accepted spelling: short name, alias, spec name (with or without the
 * VIRTIO_BALLOON_F_ prefix, any case, `-` or `_`) or bit number; null when unknown.
 */
export function findFeature(word: string): FeatureInfo | null {
  const key = word.trim().toLowerCase().replace(/_/g, "-").replace(/^virtio-balloon-f-/, "");
  return (
    (FEATURES as readonly FeatureInfo[]).find(
      (f) => f.name === key || f.aliases.includes(key) || f.spec.toLowerCase().replace(/_/g, "-") === key || String(f.bit) === key,
    ) ?? null
  );
}

/** findFeature, or an error that lists the known names. */
export function featureByName(word: string): FeatureInfo {
  const f = findFeature(word);
  if (!f) throw new Error(`unknown feature ${JSON.stringify(word)} (known: ${FEATURES.map((x) => x.name).join(", ")})`);
  return f;
}

/** Parses `"stats, reporting"` (names as findFeature takes them, plus `all`, `default`, `none`); unknown names throw. */
export function parseFeatures(text: string): FeatureName[] {
  const out = new Set<FeatureName>();
  for (const raw of text.split(/[\s,;]+/)) {
    const word = raw.trim().toLowerCase();
    if (!word || word === "none") continue;
    if (word === "all") FEATURES.forEach((f) => out.add(f.name));
    else if (word === "default") DEFAULT_FEATURES.forEach((f) => out.add(f));
    else out.add(featureByName(raw).name);
  }
  return [...out];
}

/** Bit mask (bits 0..7) of named features. */
export function featureMask(names: readonly FeatureName[]): number {
  let mask = 0;
  for (const f of FEATURES) if (names.includes(f.name)) mask |= 1 << f.bit;
  return mask;
}

/** The device's offer (spec name -> offered) for a list of public names: exactly those bits. */
export function featureOffer(names: readonly FeatureName[]): Record<FeatureSpecName, boolean> {
  return Object.fromEntries(FEATURES.map((f) => [f.spec, names.includes(f.name)])) as Record<FeatureSpecName, boolean>;
}

// ---- events -----------------------------------------------------------------------------------

/** Events of the balloon device and its host API (`host.on(name, fn)`; payload types in balloon/events.ts). */
export const BALLOON_EVENTS = ["target", "actual", "inflate", "deflate", "report", "hint", "stats", "diagnostic", "features", "reset", "fault"] as const;
export type BalloonEventName = (typeof BALLOON_EVENTS)[number];

/** DOM events the `<v86-balloon-vm>` element dispatches. */
export const ELEMENT_EVENTS = {
  /** The shell answers (detail: the MountedVM). */
  ready: "v86-ready",
  /** Loading, booting or restoring failed (detail: the Error). */
  error: "v86-error",
} as const;

// ---- faults -----------------------------------------------------------------------------------

/** A fault-injection mode of the device (its `BalloonFaults` key), its public name and spellings. */
export interface FaultInfo {
  /** Key in the device's `BalloonFaults`. */
  key: FaultKey;
  /** Public kebab-case name (`# fault:` descriptors, `--fault`). */
  name: string;
  aliases: readonly string[];
  /** For faults that take a value: its syntax and what a bare name means. */
  value?: { syntax: string; bare: string };
}

export const FAULTS = [
  { key: "lieAboutInit", name: "lie-about-init", aliases: ["lie-init", "lie"] },
  { key: "setPaddingBits", name: "set-padding-bits", aliases: ["padding-bits"] },
  { key: "shortReportUsedLength", name: "short-report-used-length", aliases: ["short-report", "short-used-length"] },
  { key: "scribbleReported", name: "scribble-reported", aliases: ["scribble"] },
  { key: "delayUsedMs", name: "delay-used-ms", aliases: ["delay-used"], value: { syntax: "MS", bare: "500" } },
  { key: "dropUsedEvery", name: "drop-used-every", aliases: ["drop-used"], value: { syntax: "N", bare: "4" } },
  { key: "withholdInterrupts", name: "withhold-interrupts", aliases: [] },
  { key: "hugeNumPages", name: "huge-num-pages", aliases: [] },
  { key: "configStorm", name: "config-storm", aliases: [], value: { syntax: "COUNT@MS[+toggle]", bare: "200@10" } },
  { key: "resetMidInflate", name: "reset-mid-inflate", aliases: [] },
  { key: "offerUnchecked", name: "offer-unchecked", aliases: [] },
] as const;

export type FaultKey = (typeof FAULTS)[number]["key"];

/** The fault for its key, public name, an alias or a kebab/snake spelling of its key; null when unknown. */
export function findFault(word: string): FaultInfo | null {
  const w = word.trim();
  const kebab = w.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, "-").toLowerCase();
  return (FAULTS as readonly FaultInfo[]).find((f) => f.key === w || f.name === kebab || f.aliases.includes(kebab)) ?? null;
}

// ---- options ----------------------------------------------------------------------------------

/**
 * Options of mount() and, spelled as HTML attributes, of `<v86-balloon-vm>`: attribute -> option key.
 * The element reads exactly these; the README's table is this list.
 */
export const ELEMENT_ATTRIBUTES = {
  memory: "memory",
  features: "features",
  images: "images",
  kernel: "kernel",
  initrd: "initrd",
  state: "state",
  floor: "floor",
  commands: "commands",
  autostart: "autostart",
  lazy: "lazy",
  compact: "compact",
  theme: "theme",
  "cmdline-extra": "cmdlineExtra",
  "font-size": "fontSize",
} as const;
export type ElementAttribute = keyof typeof ELEMENT_ATTRIBUTES;

/** Guest RAM limits in MiB: below ~65 MiB v86 cannot copy the initramfs in; the guest kernel has no HIGHMEM. */
export const MIN_MEMORY_MIB = 72;
export const MAX_MEMORY_MIB = 890;
export const DEFAULT_MEMORY_MIB = 128;

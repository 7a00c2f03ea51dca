/** The virtio-balloon feature bits the host can offer, with the names the demo and embed use. */
export interface FeatureInfo {
  bit: number;
  /** Name in the `features="..."` attribute. */
  name: FeatureName;
  /** Spec name (VIRTIO_BALLOON_F_*). */
  spec: string;
  /** One line for the demo's checkbox tooltip. */
  help: string;
}

export type FeatureName =
  | "must-tell-host"
  | "stats"
  | "deflate-on-oom"
  | "hinting"
  | "poison"
  | "reporting"
  | "init-reported"
  | "init-on-inflate";

export const FEATURES: readonly FeatureInfo[] = [
  { bit: 0, name: "must-tell-host", spec: "MUST_TELL_HOST", help: "guest tells the host before reusing deflated pages" },
  { bit: 1, name: "stats", spec: "STATS_VQ", help: "memory statistics queue (MemFree, MemAvailable, ...)" },
  { bit: 2, name: "deflate-on-oom", spec: "DEFLATE_ON_OOM", help: "guest deflates the balloon instead of OOM-killing" },
  { bit: 3, name: "hinting", spec: "FREE_PAGE_HINT", help: "free page hinting cycles started by the host" },
  { bit: 4, name: "poison", spec: "PAGE_POISON", help: "guest tells the host its free-page poison value" },
  { bit: 5, name: "reporting", spec: "PAGE_REPORTING", help: "guest reports freed 4 MiB blocks, the device zeroes them" },
  { bit: 6, name: "init-reported", spec: "DEVICE_INIT_REPORTED", help: "device re-initialises reported pages" },
  { bit: 7, name: "init-on-inflate", spec: "DEVICE_INIT_ON_INFLATE", help: "device re-initialises inflated pages" },
];

/** What the demo offers by default. */
export const DEFAULT_FEATURES: readonly FeatureName[] = ["must-tell-host", "stats", "hinting", "reporting", "init-reported", "init-on-inflate"];

/** Parses `"stats, reporting"` (also accepts spec names and bit numbers); unknown names throw. */
export function parseFeatures(text: string): FeatureName[] {
  const out = new Set<FeatureName>();
  for (const raw of text.split(/[\s,;]+/)) {
    const word = raw.trim().toLowerCase();
    if (!word) continue;
    if (word === "all") FEATURES.forEach((f) => out.add(f.name));
    else if (word === "default") DEFAULT_FEATURES.forEach((f) => out.add(f));
    else if (word === "none") continue;
    else {
      const f = FEATURES.find(
        (x) => x.name === word || x.spec.toLowerCase() === word.replace(/^virtio_balloon_f_/, "") || String(x.bit) === word,
      );
      if (!f) throw new Error(`unknown balloon feature "${raw}" (known: ${FEATURES.map((x) => x.name).join(", ")})`);
      out.add(f.name);
    }
  }
  return [...out];
}

export function featureMask(names: readonly FeatureName[]): number {
  let mask = 0;
  for (const f of FEATURES) if (names.includes(f.name)) mask |= 1 << f.bit;
  return mask;
}

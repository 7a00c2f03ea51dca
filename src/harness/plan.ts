/** From run options and test scripts to boot groups (platform-neutral). */
import type { FeatureSpec, TestDescriptor } from "./descriptor.js";
import { resolveFeatures } from "./descriptor.js";
import { bootKey } from "./session.js";
import type { BootConfig, PlannedTest, TestGroup } from "./types.js";

export interface PlanDefaults {
  memoryMiB: number;
  cmdline?: string;
  cmdlineExtra?: string;
  kernel?: string;
  initrd?: string;
  /** `--modules` (then `initrd` is the image with the modules appended). */
  modules?: string;
  imageDir?: string;
  features?: FeatureSpec;
  faults: string[];
  timeoutTestMs: number;
  timeoutBootMs: number;
}

export const DEFAULT_TEST_TIMEOUT_MS = 120_000;
export const DEFAULT_BOOT_TIMEOUT_MS = 90_000;
/** A distribution kernel takes 14–87 s to its shell in v86 (probing hardware v86 does not have). */
export const USER_KERNEL_BOOT_TIMEOUT_MS = 240_000;
export const DEFAULT_MEMORY_MIB = 128;

export function bootFor(d: TestDescriptor, defaults: PlanDefaults): BootConfig {
  const extra = [defaults.cmdlineExtra, d.cmdline].filter(Boolean).join(" ");
  return {
    memoryMiB: d.memoryMiB ?? defaults.memoryMiB,
    ...(defaults.cmdline ? { cmdline: [defaults.cmdline, d.cmdline].filter(Boolean).join(" ") } : {}),
    ...(!defaults.cmdline && extra ? { cmdlineExtra: extra } : {}),
    ...(defaults.kernel ? { kernel: defaults.kernel } : {}),
    ...(defaults.initrd ? { initrd: defaults.initrd } : {}),
    ...(defaults.modules ? { modules: defaults.modules } : {}),
    ...(defaults.imageDir ? { imageDir: defaults.imageDir } : {}),
    features: resolveFeatures(defaults.features, d.features),
    faults: [...new Set([...defaults.faults, ...d.faults])].sort(),
    bootTimeoutMs: defaults.timeoutBootMs,
  };
}

/**
 * Groups tests by boot config, in first-seen order; `boot: fresh` tests get their own group. With more
 * workers than groups, the biggest groups are split so every worker has a guest to run.
 */
export function groupTests(tests: PlannedTest[], defaults: PlanDefaults, workers = 1): TestGroup[] {
  const groups: TestGroup[] = [];
  const byKey = new Map<string, TestGroup>();
  for (const t of tests) {
    const boot = bootFor(t.descriptor, defaults);
    const key = bootKey(boot);
    if (t.descriptor.fresh) {
      groups.push({ key, boot, tests: [t], fresh: true });
      continue;
    }
    let g = byKey.get(key);
    if (!g) {
      g = { key, boot, tests: [], fresh: false };
      byKey.set(key, g);
      groups.push(g);
    }
    g.tests.push(t);
  }
  for (;;) {
    if (groups.length >= workers) break;
    const biggest = groups.filter((g) => g.tests.length > 1).sort((a, b) => b.tests.length - a.tests.length)[0];
    if (!biggest) break;
    const half = Math.ceil(biggest.tests.length / 2);
    const rest = biggest.tests.splice(half);
    groups.splice(groups.indexOf(biggest) + 1, 0, { ...biggest, tests: rest });
  }
  return groups;
}

/**
 * The embeddable v86-balloon VM: `<v86-balloon-vm>` (registered on import) and `mount()`.
 * Built as an ES module library by `npm run build:lib` (dist/lib/v86-balloon.js).
 */
import { defineElement } from "./element.js";

export { defineElement, V86BalloonVMElement } from "./element.js";
export { mount, defaultImageBase, type MountOptions, type MountedVM } from "./mount.js";
export { bootGuest, checkWebAssembly, hasBalloon, LoadError, MIN_MEMORY_MIB, MAX_MEMORY_MIB, type BootOptions, type Booted } from "./boot.js";
export { FEATURES, DEFAULT_FEATURES, parseFeatures, featureMask, type FeatureName, type FeatureInfo } from "./features.js";
export { SerialTerminal } from "./terminal.js";
export type { BalloonLike, BalloonStatsLike } from "./balloon-types.js";

defineElement();

/**
 * The embeddable v86-balloon VM: `<v86-balloon-vm>` (registered on import) and `mount()`.
 * Built as an ES module library by `npm run build:lib` (dist/lib/v86-balloon.js).
 */
import { defineElement } from "./element.js";

export { defineElement, V86BalloonVMElement } from "./element.js";
export { mount, type MountOptions, type MountedVM } from "./mount.js";
export { bootGuest, checkWebAssembly, hasBalloon, LoadError, type BootOptions, type Booted } from "./boot.js";
export * from "../vocabulary.js";
export { SerialTerminal } from "./terminal.js";
export type { BalloonLike, BalloonStatsLike } from "./balloon-types.js";

defineElement();

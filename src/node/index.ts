/** Public Node API (`import ... from "v86-balloon/node"`): boot the guest with the balloon, drive it, save it. */
export { startNodeBalloonVM, type NodeBalloonVMOptions, type BalloonVM } from "./balloon-vm-node.js";
export { loadGuestImages, GUEST_DIR } from "./vm-node.js";
export { VM, PROMPT, BootError, type VMOptions, type GuestImages } from "../vm.js";
export { BalloonHost, BALLOON_PAGE_SIZE, type FeatureView } from "../host/balloon-host.js";
export type * from "../host/balloon-host.js";
export type { AttachOptions, AttachedBalloon } from "../host/attach.js";
export * from "../vocabulary.js";
export { makeSnapshot, type SnapshotOptions, type Snapshot } from "./snapshot.js";
export * from "../state-file.js";

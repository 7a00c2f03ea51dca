/** Public API of the guest test harness (see README.md in this directory). */
export { runTests, planTests, type RunOptions, type RunResult } from "./runner.js";
export { runGroup, bootKey, conformanceFailure, type GroupOptions } from "./session.js";
export { parseTap, writeTap, type TapResult, type TapAssertion, type ReportCase } from "./tap.js";
export { writeJUnit } from "./junit.js";
export { parseShard, shardItems, type ShardSpec } from "./shard.js";
export { parseDescriptor, parseFeatureSpec, resolveFeatures, faultByName, type TestDescriptor } from "./descriptor.js";
export { runHostStep } from "./host-steps.js";
export { expandTestArgs, SUITE_DIR } from "./files.js";
export type * from "./types.js";

// Moved to devkit/ (shared with the benchmarks, which must not import test/).
export * from "../../devkit/browser.js";

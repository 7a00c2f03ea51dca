/** Child-process worker: runs the groups the parent sends (IPC), streams events, returns results. */
import { nodeLauncher } from "./node-launcher.js";
import { runGroup } from "./session.js";
import { nodeGroupOptions, type GroupExtras } from "./runner.js";
import type { TestGroup } from "./types.js";

type Msg = { type: "run"; group: TestGroup; lib: string; traceAll: boolean; extra?: GroupExtras } | { type: "exit" };

const send = (m: unknown) => process.send?.(m);

process.on("message", (m: Msg) => {
  if (m.type === "exit") {
    process.disconnect?.();
    setTimeout(() => process.exit(0), 100).unref();
    return;
  }
  runGroup(m.group, { ...nodeGroupOptions(m.extra), launcher: nodeLauncher, libScript: m.lib, traceAll: m.traceAll, emit: (event) => send({ type: "event", event }) })
    .then((results) => send({ type: "done", results }))
    .catch((e: Error) => send({ type: "error", error: e.stack ?? e.message }));
});

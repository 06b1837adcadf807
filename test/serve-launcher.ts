// Test-only launcher: `wanlab serve ARGS` exactly as bin/wanlab.js runs it (the same CLI parser,
// the same process life), with test seams injected into the server first. The production
// server reads no test settings from its environment; a test that needs injected engine
// failures or shorter waits in a server process starts it through this module:
//
//   node dist/test/serve-launcher.js '{"faults":"transient=1","stopWaitMs":0,"cancelWaitMs":0}' serve --model DIR ...
//
// faults: "transient=P,fatal=P" (src/server/jobs.ts parseFaults); stopWaitMs, cancelWaitMs:
// ServeOptions' of the same names. Used by test/serve.ts and scripts/lib/wanlab.mjs.
import { main } from "../src/cli.js";
import { injectTestSeams } from "../src/server/index.js";
import { parseFaults } from "../src/server/jobs.js";

/** The seams as they travel on the launcher's command line (JSON). */
export interface LauncherSeams {
  faults?: string;
  stopWaitMs?: number;
  cancelWaitMs?: number;
}

const [spec, ...argv] = process.argv.slice(2);
const seams = JSON.parse(spec ?? "{}") as LauncherSeams;
for (const k of Object.keys(seams)) {
  if (k !== "faults" && k !== "stopWaitMs" && k !== "cancelWaitMs") throw new Error(`serve-launcher: unknown seam '${k}'`);
}
injectTestSeams({ faults: parseFaults(seams.faults), stopWaitMs: seams.stopWaitMs, cancelWaitMs: seams.cancelWaitMs });
process.exitCode = await main(argv);

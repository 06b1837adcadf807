// wanlab: the public entry, `import * as wan from "wanlab"`: the names the notebooks, the scripts
// and the README use, and no more (test/public-api.test.ts holds this list; a name added here
// without adding it there fails). The rest is behind subpaths:
//   "wanlab/server"     serve(), runServer(), the job schema        (src/server/index.ts)
//   "wanlab/client"     the raw HTTP client of `wanlab serve`        (src/client/index.ts)
//   "wanlab/internals"  everything else, for tests and tools         (src/internals.ts)

// A lab: open() loads a model here (or attaches to a server with `server: true`), connect()
// attaches to a running `wanlab serve`; both show live progress, ■ to cancel and inline results
// in a notebook.
export { connect, open, type ForkOptions, type NotebookFork, type NotebookLab, type NotebookOpenOptions, type NotebookResult, type ServerLab } from "./lab.js";
export type { ForkState, ResumeState } from "./fork.js";
// What a lab takes, gives and throws.
export { resolveParams, ParamError, type GenerateParams, type ResolvedParams } from "./params.js";
export { CancelledError, type CancelledAt, type GenerateOptions, type GenerateResult, type MemoryPlanReport, type ModelInfo, type ProgressEvent, type Tensor, type Video } from "./shared/lab.js";
// Notebook output: display(x), the inline video's settings, a frame strip, a labelled grid of
// videos and a side-by-side comparison, plotly charts.
export { display, type Displayable, type MimeBundle } from "./display/mime.js";
export { displayConfig, frameStrip } from "./display/video.js";
export { compare, grid } from "./display/grid.js";
export * as plot from "./display/plot.js";
export type { Figure } from "./display/plot.js";
// A model folder and this machine, as objects: what `wanlab inspect` and `wanlab doctor` print.
export { inspect, type InspectOptions, type InspectReport } from "./models.js";
export { doctor, type DoctorReport } from "./doctor.js";
// The raw client of a running server (jobs, queue, stats) for scripts, and where its server.json is.
export { connect as connectClient, type Client, type ConnectOptions } from "./client/index.js";
export { readServerFile, runtimeDir, type ServerInfo } from "./server/runtime.js";

// "wanlab/internals": every name of the package's API, for tests and tools (bench, load test,
// notebooks' tooling). Users import from "wanlab" (src/index.ts); the server and the raw
// client also have their own subpaths, "wanlab/server" and "wanlab/client". The names and
// objects here are the same as there: `import * as wan from "wanlab/internals"` is a superset
// of `import * as wan from "wanlab"`.
export * from "./index.js";
export {
  benchLoad,
  defaultModel,
  dimsPresets,
  layouts,
  makeTiny,
  wanlabHome,
  type ComponentReport,
  type Dims,
  type Layout,
  type LoadBenchResult,
  type MakeTinyOptions,
  type MemoryReport,
} from "./models.js";
export { checkLinks, doctorText, linksText, type EngineReport, type LinkCheckOptions, type LinkReport } from "./doctor.js";
export { defaultFps, open as openEngine, type DeviceMemoryNow, type EngineLab, type FollowSummary, type Lab, type LoadEvent, type OpenOptions, type PromptCacheStats, type RankTimings } from "./engine.js";
export { defaults, parseSeed, randomSeed } from "./params.js";
export { cleanPrompt, loadTokenizer, type EncodedPrompt, type PromptTokenizer } from "./tokenizer.js";
export { findFfmpeg, writeMp4, writePngFrames } from "./video/ffmpeg.js";
export { videoToUint8 } from "./video/convert.js";
export { ServerError, type JobEventMessage, type JobView, type RemoteResult, type SubmitParams } from "./client/index.js";
export { jobBodySchema } from "./server/schema.js";
export type { JobOptions } from "./shared/jobs.js";
// The server's journal, as the load test reads it back (scripts/loadtest.mjs).
export { readJournal, replay } from "./server/journal.js";
// The notebook layer beyond open/connect/display (src/display/index.ts).
export { inKernel, latentPreview } from "./display/index.js";
export { statsFigure } from "./lab.js";
// "Did you mean": the edit distance the CLI and the zx scripts' flag tables rank names by.
export { editDistance } from "./cli/suggest.js";

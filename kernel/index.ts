// wanlab: the public TypeScript API.
export {
  benchLoad,
  defaultModel,
  dimsPresets,
  inspect,
  layouts,
  makeTiny,
  wanlabHome,
  type ComponentReport,
  type Dims,
  type InspectOptions,
  type InspectReport,
  type Layout,
  type LoadBenchResult,
  type MakeTinyOptions,
  type MemoryReport,
} from "./models.js";
export { doctor, doctorText, type DoctorReport, type EngineReport } from "./doctor.js";
export { CancelledError, type CancelledAt, defaultFps, open as openEngine, type DeviceMemoryNow, type EngineLab, type FollowSummary, type GenerateOptions, type GenerateResult, type Lab, type LoadEvent, type MemoryPlanReport, type ModelInfo, type OpenOptions, type ProgressEvent, type PromptCacheStats, type RankTimings, type Tensor, type Video } from "./engine.js";
export { defaults, ParamError, parseSeed, randomSeed, resolveParams, type GenerateParams, type ResolvedParams } from "./params.js";
export { cleanPrompt, loadTokenizer, type EncodedPrompt, type PromptTokenizer } from "./tokenizer.js";
export { findFfmpeg, writeMp4, writePngFrames } from "./video/ffmpeg.js";
export { videoToUint8 } from "./video/convert.js";
// connectClient: the server's raw client (jobs, queue, server stats) for scripts; connect() below is
// the notebook lab over it.
export { connect as connectClient, ServerError, type Client, type ConnectOptions, type JobEventMessage, type JobView, type RemoteResult, type SubmitParams } from "./client/index.js";
export { runtimeDir, readServerFile, type ServerInfo } from "./server/runtime.js";
export { jobBodySchema, type JobOptions } from "./server/schema.js";
// The notebook layer: open() is the engine's plus live progress, ■ to cancel, inline results, stats().
export { connect, display, displayConfig, frameStrip, inKernel, latentPreview, open, statsFigure, type Displayable, type Figure, type MimeBundle, type NotebookLab, type NotebookOpenOptions, type NotebookResult, type ServerLab } from "./display/index.js";
export * as plot from "./display/plot.js";

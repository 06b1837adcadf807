// The in-process engine: load a Wan2.1 model once, generate many videos from it.
//
//   const lab = await open({ model: "/models/Wan2.1-T2V-1.3B" });
//   const r = await lab.generate({ prompt: "a cat on a beach", seed: 42, numFrames: 17 });
//   await r.video.save("cat.mp4");
//   await lab.close();
//
// Compute runs on a native worker thread: the event loop (and a notebook kernel) stays free,
// progress arrives per denoising step and per VAE chunk, and an AbortSignal cancels within
// seconds (the engine checks between DiT blocks, attention chunks, VAE chunks and text-encoder
// layers) with the model still loaded; the CancelledError says where it stopped.
import { defaultModel } from "./models.js";
import { native } from "./native.js";
import { ParamError, paramErrorFromEngine, resolveParams, type GenerateParams, type ResolvedParams } from "./params.js";
import { forkStateOf, readForkFile, type ForkState } from "./fork.js";
import { readInputVideo } from "./video/read.js";
import { loadTokenizer, type PromptTokenizer } from "./tokenizer.js";
import { videoToUint8 } from "./video/convert.js";
import { writeMp4, writePngFrames } from "./video/ffmpeg.js";
import { resolveEnvRendezvous } from "./launch-env.js";
import { CancelledError, defaultFps, framesTensor, type CancelledAt, type GenerateOptions, type GenerateResult, type Lab, type LoadEvent, type MemoryPlanReport, type ModelInfo, type ProgressEvent, type Tensor, type Video } from "./shared/lab.js";

// The lab's types live in src/shared/lab.ts (the client and the notebook layer use them too).
export { CancelledError, defaultFps, framesTensor, type CancelledAt, type GenerateOptions, type GenerateResult, type Lab, type LoadEvent, type MemoryPlanReport, type ModelInfo, type ProgressEvent, type Tensor, type Video };
export type { Placement, RankTimings } from "./shared/lab.js";

export interface OpenOptions {
  /** Model directory (official, diffusers or ComfyUI layout); default: the embedded tiny model. */
  model?: string;
  /** Tokenizer directory holding tokenizer.json; default: the one the layout names. */
  tokenizer?: string;
  /** Devices the DiT runs on, one rank each: "auto" (default: cuda:0 when this build has CUDA and a
   * GPU is visible, else cpu; `info.placement.devices_note` says which and why), "cpu", "cpu:0-3",
   * "cuda:0-7". */
  devices?: string;
  /** Ulysses and ring degrees (ulysses × ring × (cfgParallel ? 2 : 1) = devices); omitted: chosen. */
  ulysses?: number;
  ring?: number;
  /** Conditional and unconditional passes on two halves of the devices. */
  cfgParallel?: boolean;
  /** "auto": ulysses × ring × CFG-parallel picked from the ranks, the heads and the nodes
   * (docs/parallel.md#layout-auto); `info.parallel.reason` says how. Not with the degrees. */
  layout?: "auto";
  /** How ranks exchange tensors: "nccl" GPU to GPU (CUDA ranks, a build with NCCL), "gloo" through
   * host memory (GPU ranks stage every transfer through pinned buffers: for machines where NCCL or
   * peer-to-peer is broken). Default: nccl between CUDA ranks when the build has NCCL, else gloo;
   * ranks sharing a GPU (devices "cuda:0x4", a test mode) always use gloo. */
  transport?: "gloo" | "nccl";
  /** Timeout of every collective between ranks, seconds (default 300). */
  timeoutS?: number;
  /** Several processes: "tcp://HOST:PORT" (served by node 0), the node count and this node's rank;
   * `devices` are this node's ranks, the degrees count all nodes' ranks. */
  rendezvous?: string;
  nnodes?: number;
  nodeRank?: number;
  /** Per-rank logs of a device group: DIR/rank-K.log (K the global rank) and DIR/node-N.log;
   * without it lines go to stderr. Level: "error" | "warn" | "info" | "debug" (default
   * $WANLAB_LOG_LEVEL, else "warn"). */
  logDir?: string;
  logLevel?: "error" | "warn" | "info" | "debug";
  /** Compute dtype of the models: "f32" | "bf16" | "f16"; default float32 on the CPU, bfloat16 on CUDA. */
  dtype?: "f32" | "bf16" | "f16";
  /** Where the text encoder and the VAE run: "cpu" | "cuda" | "cuda:N"; default the DiT's first device. */
  t5Device?: string;
  /** A CUDA text encoder's weights stay in pinned host memory and come to the device only to encode
   * a prompt the engine has not encoded before (DiffSynth's text-encoder offload): denoising and
   * decoding get its 11.4 GB (umt5-xxl, bf16). Costs one host→device copy of them per new prompt. */
  t5Offload?: boolean;
  vaeDevice?: string;
  /** CUDA: parameters of the DiT kept resident per device (the other blocks stream in from pinned
   * host memory, one block ahead); default all resident. */
  persistentParams?: number;
  /** Device groups: each rank keeps 1/(ulysses × ring) of every DiT block's weights and all-gathers
   * a block just before computing it (less memory per device, one all-gather per block). */
  shardWeights?: boolean;
  /** Bytes of live tensors allowed per device (DiffSynth's vram_limit, as the memory model counts
   * them: `wanlab inspect`). On CUDA the engine keeps as many DiT blocks resident as leave room for
   * a `budgetVideo` generation (persistentParams chosen unless given); every generate whose
   * predicted peak is over the budget is refused before any compute, naming what would fit.
   * `info.placement.memory_budget_note` says what was chosen. Leave 1–2 GB of the card for the
   * CUDA context and the allocator's cache: "auto" does (the device's total less 1.5 GB; on the CPU
   * the host's available memory at load less 1 GB). */
  budget?: number | "auto";
  /** The generation the budget is planned for; default DiffSynth's 480×832×81, untiled. */
  budgetVideo?: { height?: number; width?: number; numFrames?: number; tiled?: boolean };
  /** Loading stages as they start and end (the notebook's load bar). */
  onLoad?: (event: LoadEvent) => void;
}

interface NativeEngine {
  generate(request: Record<string, unknown>, onProgress?: (e: ProgressEvent) => void, saveTensors?: string, previewEvery?: number): Promise<NativeResult>;
  cancel(): void;
  info(): string;
  close(): void;
  follow(): Promise<string>;
  memory(): string;
  plan(request: Record<string, unknown>): string;
  promptCache(): string;
  stopFollowing(): void;
  endRequests(): void;
}
interface NativeResult {
  noise: Tensor;
  context: Tensor;
  latents: Tensor;
  video: Tensor;
  timings: string;
  /** A run stopped early (stopAtStep): its fork state as JSON, and no video. */
  fork?: string;
}

/** A run stopped after a step (EngineLab.fork): its latents and what a resume needs. */
export interface ForkedRun {
  /** Every parameter as used, the seed included. */
  params: ResolvedParams;
  /** Pass as `resume` (GenerateParams) to continue the run. */
  state: ForkState;
  timings: Omit<GenerateResult["timings"], "decode_s" | "predicted_peak_bytes"> & { stopped_at_step: number };
}

/** A CUDA device the engine's models use, now (T2VEngine::device_memory): the driver's free and
 * total bytes and the caching allocator's counters. */
export interface DeviceMemoryNow {
  device: string;
  name: string;
  total_bytes: number;
  free_bytes: number;
  allocated_bytes: number;
  peak_allocated_bytes: number;
  reserved_bytes: number;
}


/** The in-process engine's lab: a Lab plus the multi-node request stream (`wanlab serve` on
 * several nodes). */
export interface EngineLab extends Lab {
  /** ModelInfo and the DiT's fingerprint, what a fork state records as `model` (ForkState). */
  readonly info: ModelInfo & { dit_fingerprint: string };
  /** Nodes 1.. of a multi-node engine (`nodeRank` > 0): run node 0's requests as they come, until
   * node 0 calls endRequests() or stopFollowing() is called. Node 0 publishes every generate(). */
  follow(): Promise<FollowSummary>;
  stopFollowing(): void;
  /** Node 0: tell the following nodes there are no more requests. */
  endRequests(): void;
  /** The CUDA devices the models use, now ([] on the CPU). */
  deviceMemory(): DeviceMemoryNow[];
  /** What a generation would need on the DiT's first device (the memory model, as `wanlab inspect`
   * predicts it for this engine's placement) and whether it fits the budget; nothing is computed. */
  memoryPlan(params: Omit<GenerateParams, "prompt">): MemoryPlanReport;
  /** The engine's prompt-embedding cache: a sweep that keeps its prompts encodes them once. */
  promptCache(): PromptCacheStats;
  /** Runs the first `stopAtStep` steps of a generation and stops there, undecoded: its latents and
   * what a resume needs (docs/forks.md). `options.saveTensors` writes them as a fork file. */
  fork(params: GenerateParams, stopAtStep: number, options?: Omit<GenerateOptions, "returnTensors">): Promise<ForkedRun>;
}

/** Embeddings held (host bytes, at most capacity_bytes; least recently used out first), and how
 * many prompts were looked up and found (hits) or encoded (misses) since the engine opened. */
export interface PromptCacheStats {
  entries: number;
  bytes: number;
  capacity_bytes: number;
  hits: number;
  misses: number;
}


/** Throws ParamError on field "budget" for a plan over the budget: generate() and the server's
 * submit both refuse such a request before any work. */
export function refuseOverBudget(plan: MemoryPlanReport): void {
  if (!plan.fits) throw new ParamError("budget", plan.problem);
}

export interface FollowSummary {
  followed: number;
  failed: { request: number; error: string }[];
}


function makeVideo(video: Tensor): Video {
  const [, numFrames, height, width] = video.shape as [number, number, number, number];
  const frames = videoToUint8(video.data, { frames: numFrames, height, width });
  return {
    frames,
    width,
    height,
    numFrames,
    fps: defaultFps,
    async save(path, options = {}) {
      await writeMp4(frames, { width, height, frames: numFrames, fps: options.fps ?? defaultFps, crf: options.crf, out: path });
      return path;
    },
    saveFrames(dir) {
      return writePngFrames(frames, { width, height, frames: numFrames, dir });
    },
    tensor: () => framesTensor(frames, numFrames, height, width),
  };
}

/** The engine's refusal of the device list or the transport, made before any load (the addon's code
 * "WANLAB_PARAM", field "devices" or "transport"), as a ParamError on that option; any other error
 * as it is. */
function groupOptionError(e: unknown): unknown {
  const { code, field, message } = (e ?? {}) as { code?: unknown; field?: unknown; message?: unknown };
  return code === "WANLAB_PARAM" && (field === "devices" || field === "transport") && typeof message === "string" ? new ParamError(field, message) : e;
}

/** Loads a model (default: the embedded tiny one) into a resident engine. */
export async function open(options: OpenOptions = {}): Promise<EngineLab> {
  const dir = options.model ?? (await defaultModel());
  // rendezvous "env://": the group from torchrun's (or Slurm's) variables, checked before any load.
  const { devices, ulysses, ring, cfgParallel, layout, transport, timeoutS, rendezvous, nnodes, nodeRank, logDir, logLevel, dtype, t5Device, t5Offload, vaeDevice, persistentParams, shardWeights, budget, budgetVideo } = resolveEnvRendezvous(options);
  const stage = async <T>(name: LoadEvent["stage"], work: () => Promise<T>): Promise<T> => {
    options.onLoad?.({ stage: name, state: "start" });
    const t0 = performance.now();
    const out = await work();
    options.onLoad?.({ stage: name, state: "done", seconds: (performance.now() - t0) / 1000 });
    return out;
  };
  const engine = await stage("model", async () => {
    try {  // openEngine checks the options at once (it throws) and loads in the background (it rejects)
      return (await native().openEngine(dir, { devices: devices ?? "auto", ulysses, ring, cfgParallel, layout, transport, timeoutS, rendezvous, nnodes, nodeRank, logDir, logLevel, dtype, t5Device, t5Offload, vaeDevice, persistentParams, shardWeights, budget, budgetVideo })) as NativeEngine;
    } catch (e) {
      throw groupOptionError(e);
    }
  });
  const info = JSON.parse(engine.info()) as ModelInfo & { dit_fingerprint: string };
  let tokenizer: PromptTokenizer;
  try {
    tokenizer = await stage("tokenizer", () => loadTokenizer(options.tokenizer ?? info.tokenizer_dir));
  } catch (e) {
    engine.close();
    throw e;
  }
  const textLen = Number(info.dit.text_len);
  let closed = false;

  async function generate(params: GenerateParams, options: GenerateOptions = {}): Promise<GenerateResult> {
    const { p, posi, r } = await run("generate", params, options, 0);
    const result: GenerateResult = {
      video: makeVideo(r.video),
      params: p,
      promptTokens: posi.length,
      timings: JSON.parse(r.timings),
    };
    if (options.returnTensors) result.tensors = { noise: r.noise, context: r.context, latents: r.latents, video: r.video };
    return result;
  }

  async function fork(params: GenerateParams, stopAtStep: number, options: GenerateOptions = {}): Promise<ForkedRun> {
    if (!Number.isInteger(stopAtStep) || stopAtStep < 1) throw new ParamError("stopAtStep", `stopAtStep must be an integer >= 1, got ${stopAtStep}`);
    const { p, r } = await run("fork", params, options, stopAtStep);
    return { params: p, state: forkStateOf(r.fork!, r.latents), timings: JSON.parse(r.timings) };
  }

  // One engine run: a whole generation (stopAtStep 0), or its first stopAtStep steps.
  async function run(call: string, params: GenerateParams, options: GenerateOptions, stopAtStep: number) {
    if (closed) throw new Error(`${call}: the engine is closed`);
    const p = resolveParams(params);
    // A resume reads its fork file (GenerateParams.resume) before any compute.
    const resume = typeof params.resume === "string" ? await readForkFile(params.resume) : params.resume;
    options.signal?.throwIfAborted();
    const every = options.preview?.every;
    if (every !== undefined && !(Number.isInteger(every) && every >= 1)) throw new ParamError("preview.every", `preview.every must be an integer >= 1, got ${every}`);
    refuseOverBudget(planFor(p));
    const inputVideo = p.inputVideo ? await readInputVideo(p.inputVideo, p.numFrames, p.height, p.width) : undefined;
    const posi = tokenizer.encode(p.prompt, textLen);
    const nega = tokenizer.encode(p.negativePrompt, textLen);
    const onAbort = () => engine.cancel();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let r: NativeResult;
    try {
      r = await engine.generate(
        {
          promptIds: posi.ids,
          promptMask: posi.mask,
          negativeIds: nega.ids,
          negativeMask: nega.mask,
          seed: p.seed,
          height: p.height,
          width: p.width,
          numFrames: p.numFrames,
          numInferenceSteps: p.numInferenceSteps,
          cfgScale: p.cfgScale,
          sigmaShift: p.sigmaShift,
          tiled: p.tiled,
          tileSize: p.tileSize,
          tileStride: p.tileStride,
          teaCacheL1Thresh: p.teaCacheL1Thresh,
          teaCacheModelId: p.teaCacheModelId,
          inputVideo,
          denoisingStrength: p.denoisingStrength,
          ...(p.loras.length ? { loras: p.loras } : {}),
          ...(p.timesteps.length ? { timesteps: p.timesteps } : {}),
          ...(stopAtStep ? { stopAtStep } : {}),
          ...(resume ? { resumeFromStep: resume.fromStep, resumeLatents: resume.latents, resumeModel: resume.model, resumeSigmas: resume.sigmas } : {}),
        },
        options.onProgress,
        options.saveTensors,
        every ?? 0,
      );
    } catch (e) {
      if ((e as { code?: string }).code === "WANLAB_CANCELLED") throw new CancelledError((e as Error).message, e as CancelledAt);
      throw paramErrorFromEngine(e) ?? e;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    return { p, posi, r };
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    engine.close();
  }

  const follow = async (): Promise<FollowSummary> => JSON.parse(await engine.follow()) as FollowSummary;
  const stopFollowing = (): void => engine.stopFollowing();
  const endRequests = (): void => engine.endRequests();
  const deviceMemory = (): DeviceMemoryNow[] => (closed ? [] : (JSON.parse(engine.memory()) as DeviceMemoryNow[]));
  const planFor = (p: ResolvedParams): MemoryPlanReport => {
    try {
      return JSON.parse(engine.plan({ height: p.height, width: p.width, numFrames: p.numFrames, tiled: p.tiled, tileSize: p.tileSize,
        cfgScale: p.cfgScale, teaCacheL1Thresh: p.teaCacheL1Thresh, teaCacheModelId: p.teaCacheModelId,
        inputVideo: p.inputVideo !== "", denoisingStrength: p.denoisingStrength, ...(p.loras.length ? { loras: p.loras } : {}) })) as MemoryPlanReport;
    } catch (e) {  // e.g. no TeaCache calibration fits this model: the engine names the field
      throw paramErrorFromEngine(e) ?? e;
    }
  };
  function memoryPlan(params: Omit<GenerateParams, "prompt">): MemoryPlanReport {
    if (closed) throw new Error("memoryPlan: the engine is closed");
    return planFor(resolveParams({ ...params, prompt: "" }));
  }
  const promptCache = (): PromptCacheStats =>
    closed ? { entries: 0, bytes: 0, capacity_bytes: 0, hits: 0, misses: 0 } : (JSON.parse(engine.promptCache()) as PromptCacheStats);
  return { info, generate, close, [Symbol.asyncDispose]: close, follow, stopFollowing, endRequests, deviceMemory, memoryPlan, promptCache, fork };
}

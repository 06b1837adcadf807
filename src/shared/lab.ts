// What a lab is, wherever it computes: the types and helpers shared by the in-process engine
// (src/engine.ts), the client of `wanlab serve` (src/client) and the notebook layer
// (src/display). Nothing here loads the engine or the server.
import type { GenerateParams, ResolvedParams } from "../params.js";

/**
 * A loading stage. "model": the native load (weights memory-mapped and checked, modules built and,
 * with several devices, the device group started: one thread per rank, TCPStore rendezvous,
 * process groups) — one call the engine does not split; "tokenizer": tokenizer.json parsed.
 */
export interface LoadEvent {
  stage: "model" | "tokenizer";
  state: "start" | "done";
  /** Seconds the stage took (on "done"). */
  seconds?: number;
}

export interface ProgressEvent {
  stage: "encode" | "denoise" | "decode";
  step: number;
  total: number;
  /** Seconds since the stage began, and the estimate of what is left of it. */
  elapsed: number;
  eta: number;
  /** With `preview`: on every k-th denoising step (and the last), the current latents [16, f, h, w]. */
  latents?: Tensor;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Write noise, context, latents, video (float32) and token_ids (int64) to this .safetensors file. */
  saveTensors?: string;
  /** Keep the float tensors in the result (`result.tensors`). */
  returnTensors?: boolean;
  /** Latent previews: every `every` denoising steps (and at the last) a progress event carries `latents`. */
  preview?: { every: number };
}

export interface Tensor {
  data: Float32Array;
  shape: number[];
}

export interface Video {
  /** [numFrames, height, width, 3] RGB bytes. */
  frames: Uint8Array;
  width: number;
  height: number;
  numFrames: number;
  fps: number;
  /** H.264 yuv420p +faststart mp4 through ffmpeg. */
  save(path: string, options?: { fps?: number; crf?: number }): Promise<string>;
  /** One PNG per frame (0.png, 1.png, …). */
  saveFrames(dir: string): Promise<string[]>;
  /**
   * The frames as float32 in [0, 1], shape [numFrames, height, width, 3] (frames / 255: the pixels
   * shown and saved). The engine's unquantized output, [3, F, H, W] in [-1, 1], is
   * `result.tensors.video` with `returnTensors: true`.
   */
  tensor(): Tensor;
}

/** video.tensor() of [F, H, W, 3] RGB bytes. */
export function framesTensor(frames: Uint8Array, numFrames: number, height: number, width: number): Tensor {
  const data = new Float32Array(frames.length);
  for (let i = 0; i < frames.length; i++) data[i] = frames[i]! / 255;
  return { data, shape: [numFrames, height, width, 3] };
}

export interface GenerateResult {
  video: Video;
  /** Every parameter as used, the seed included (a random one when none was given). */
  params: ResolvedParams;
  /** The prompt's token count, `</s>` included. */
  promptTokens: number;
  timings: {
    encode_s: number; denoise_s: number; decode_s: number; step_s: number[];
    /** How many of the request's prompts (1, or 2 with CFG) came from the engine's prompt cache
     * instead of the text encoder: a sweep that keeps its prompts encodes them once. */
    encode_cached?: number;
    /** TeaCache (teaCacheL1Thresh): the steps (0-based) that reused the blocks' residual. */
    tea_cache_skipped_steps?: number[];
    /** With a device group: per rank, time in collectives, bytes handed to them, their count. */
    ranks?: RankTimings[];
    /** Live bytes per stage and device: measured (CUDA devices: the caching allocator's peak), and
     * the memory model's prediction for the DiT's first device. */
    device_peak_bytes?: Record<"encode" | "denoise" | "decode", Record<string, number>>;
    /** CUDA devices: what the caching allocator held from the driver at its largest, per stage. */
    device_peak_reserved_bytes?: Record<"encode" | "denoise" | "decode", Record<string, number>>;
    predicted_peak_bytes: Record<"encode" | "denoise" | "decode", Record<string, number>>;
  };
  tensors?: { noise: Tensor; context: Tensor; latents: Tensor; video: Tensor };
}

/**
 * One rank's figures for a request (this node's ranks). compute_s = step wall time minus comm_s
 * (seconds inside collectives, waiting included); bytes_sent = payload this rank handed to
 * collectives; checks = device/dtype checks, check_s their measured cost; peak_bytes = the bytes
 * the rank allocated at its peak (CPU ranks: its thread's allocations; CUDA ranks: the device's
 * caching-allocator peak), -1 where unmeasured. step_* arrays: one entry per denoising step.
 * compute_s and peak_bytes are optional for engine builds that predate them.
 */
export interface RankTimings {
  rank?: number;
  device?: string;
  comm_s: number;
  bytes_sent: number;
  collectives: number;
  compute_s?: number;
  peak_bytes?: number;
  peak_method?: string;
  checks?: number;
  check_s?: number;
  step_s?: number[];
  step_compute_s?: number[];
  step_comm_s?: number[];
  step_bytes?: number[];
  [key: string]: unknown;
}

export interface ModelInfo {
  dir: string;
  layout: string;
  tokenizer_dir: string;
  dit: Record<string, unknown>;
  t5: Record<string, unknown>;
  vae: Record<string, unknown>;
  /** The DiT's layout: ranks (devices × nodes) and degrees; with layout "auto", which rule picked
   * each degree ("auto: cfg-parallel 2: 4 ranks are even (rule 1); ..."). */
  parallel?: {
    devices: number; ulysses: number; ring: number; cfg: number; reason?: string;
    /** CUDA ranks only: how they exchange tensors, "nccl" GPU to GPU or "gloo" through pinned host
     * memory (OpenOptions.transport; CPU ranks always use gloo and leave it out). */
    transport?: "gloo" | "nccl";
    /** CUDA ranks only: true when several ranks share one GPU (devices "cuda:0x4", a test mode on
     * gloo, its ranks sharing the GPU's DiT); left out otherwise. */
    shared_device?: boolean;
  };
  /** Where each model computes ("cuda:0 bf16"; dit: one per local device) and the DiT's resident /
   * streamed parameter counts (T2VEngine::placement()). */
  placement?: Placement;
}

export interface Placement {
  dit: string[];
  t5: string;
  vae: string;
  dit_resident_params: number;
  dit_offloaded_params: number;
  /** 1, or the ranks each DiT block's weights are split over (--shard-weights). */
  dit_weight_shards: number;
  /** A float8 checkpoint: the block linear weights kept as float8 (1 B each, decoded at each use). */
  dit_f8_params: number;
  /** With devices "auto": what it chose and why, e.g. "auto: cpu (this wanlab build links a CPU-only libtorch)"; else "". */
  devices_note: string;
  /** The budget option in bytes (-1: none), and what the engine chose for it ("" without one). */
  memory_budget_bytes: number;
  memory_budget_note: string;
}

/** Where a cancelled generation stopped (native/src/pipeline/t2v.h Cancelled). */
export interface CancelledAt {
  /** "encode", "denoise" or "decode". */
  stage?: string;
  /** The denoising step in progress (1-based) and the step count; also set when stopped before decode. */
  step?: number;
  steps?: number;
  /** The DiT block (1-based) that did not run, of `blocks`, when stopped inside a step. */
  block?: number;
  blocks?: number;
  /** The VAE chunk (1-based) that did not run, of `chunks` (decode, or encode of an input video). */
  chunk?: number;
  chunks?: number;
  /** The text-encoder layer (1-based) that did not run, of `layers` (encode). */
  layer?: number;
  layers?: number;
}

/** CancelledAt's counts, each a number when set. */
const cancelledCounts = ["step", "steps", "block", "blocks", "chunk", "chunks", "layer", "layers"] as const satisfies readonly (keyof CancelledAt)[];

/** The CancelledAt fields of `o` (an engine error, a job's record): the stage when it is a string,
 * each count when it is a number; anything else is left out. */
function cancelledAt(o: unknown): CancelledAt {
  const r = (o ?? {}) as Record<string, unknown>;
  const at: CancelledAt = {};
  if (typeof r.stage === "string") at.stage = r.stage;
  for (const k of cancelledCounts) if (typeof r[k] === "number") at[k] = r[k] as number;
  return at;
}

/** A CancelledError carries the CancelledAt fields that are known. */
export interface CancelledError extends CancelledAt {}

/**
 * Thrown when an AbortSignal stops a generation; the model stays loaded. The message says where
 * it stopped ("cancelled at step 3/50, block 12/30", "cancelled during decode, chunk 5/21"), and
 * the fields the same as numbers.
 */
export class CancelledError extends Error {
  override name = "CancelledError";
  constructor(message: string, at: CancelledAt = {}) {
    super(message);
    Object.assign(this, cancelledAt(at));
  }
}

export interface Lab {
  readonly info: ModelInfo;
  generate(params: GenerateParams, options?: GenerateOptions): Promise<GenerateResult>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Predicted live bytes per stage (models/memory_model.h): weights resident on the device, the
 * streamed DiT blocks, each model's activations, and the stage peaks. */
export interface MemoryPlanReport {
  device: string;
  dit_resident_bytes: number; dit_streamed_bytes: number; t5_bytes: number; vae_bytes: number;
  /** An offloaded text encoder's weights (t5Offload): on the device while encoding only. */
  t5_streamed_bytes: number;
  t5_activation_bytes: number; dit_activation_bytes: number; vae_activation_bytes: number;
  /** Video-to-video: the input video's encode, in the encode stage (an estimate: as a decode). */
  vae_encode_activation_bytes: number;
  resident_bytes: number;
  encode_peak_bytes: number; denoise_peak_bytes: number; decode_peak_bytes: number; peak_bytes: number;
  /** Beside a GPU, host memory: streamed DiT blocks (pinned), the text encoder offloaded (pinned,
   * bf16) or on the CPU (float32), a VAE on the CPU (float32), and the larger of the CPU models'
   * activations; 0 on a CPU engine (every figure is host memory). */
  host_pinned_bytes: number; host_t5_bytes: number; host_vae_bytes: number; host_activation_bytes: number; host_bytes: number;
  /** The open option (-1: none); fits is true without one. */
  budget_bytes: number;
  fits: boolean;
  /** Why it does not fit and what would: "" when it fits. */
  problem: string;
}

export const defaultFps = 15;

// Model directories: inspecting them and writing the random-weight test models.
import { homedir } from "node:os";
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { native } from "./native.js";
import { loadTokenizer } from "./tokenizer.js";
import type { LoraSpec } from "./params.js";

/** What make-tiny writes: the published layouts; "sharded" is the official one with its DiT in
 * shards, "comfyui-fp8" ComfyUI's scaled-fp8 repacks (block linears float8 e4m3, each with its
 * scale_weight). */
export type Layout = "official" | "sharded" | "diffusers" | "comfyui" | "comfyui-fp8";
export const layouts: readonly Layout[] = ["official", "sharded", "diffusers", "comfyui", "comfyui-fp8"];
export type Dims = "tiny" | "1.3B" | "14B";
/** The engine's dims presets (native/src/checkpoint/arch.h preset_arch). Written here, not read
 * from the addon, so the CLI's option table and help load no addon; src/models.test.ts checks the
 * list against the addon's modelConstants(). */
export const dimsPresets: readonly Dims[] = ["tiny", "1.3B", "14B"];

export interface MakeTinyOptions {
  layout?: Layout;
  /** Random-weight seed (same seed → byte-identical files). */
  seed?: number;
  /** "tiny" (default) or the real 1.3B / 14B dimensions. */
  dims?: Dims;
  onProgress?: (file: string, fraction: number) => void;
}

/** Writes a deterministic random-weight Wan2.1 T2V model in a published layout. */
export async function makeTiny(out: string, options: MakeTinyOptions = {}): Promise<void> {
  const { layout = "official", seed = 0, dims = "tiny", onProgress } = options;
  await native().makeModel(out, { layout, seed, dims }, onProgress);
}

export interface InspectOptions {
  /** Device list: "cpu", "cpu:0-3", "cuda:0-7", "cuda:0,2". */
  devices?: string;
  ulysses?: number;
  ring?: number;
  /** Run the conditional and unconditional passes on two halves of the devices. */
  cfgParallel?: boolean;
  /** "auto": the degrees picked as open({ layout: "auto" }) picks them (memory.layout_reason says why). */
  layout?: "auto";
  height?: number;
  width?: number;
  numFrames?: number;
  /** Per-device budget in bytes, or "auto" (the first device's memory less a reserve, read from
   * this machine, as open({ budget: "auto" })): the report says whether the plan fits, and the
   * largest persistentParams that does. */
  budget?: number | "auto";
  /** DiT parameters kept on the device; the other blocks stream from pinned host memory (CUDA). */
  persistentParams?: number;
  /** "cpu" keeps the UMT5 off the device. */
  t5Device?: string;
  /** The text encoder's weights on the device only while encoding (OpenOptions.t5Offload). */
  t5Offload?: boolean;
  /** Tiled VAE decode. */
  tiled?: boolean;
  /** DiT blocks sharded over the sequence-parallel ranks (each block gathered while the one before it computes). */
  shardWeights?: boolean;
  /** LoRAs as a request gives them: their working copies count in every peak and against the budget. */
  loras?: LoraSpec[];
}

export interface ComponentReport {
  arch: Record<string, number | boolean | number[] | boolean[]>;
  tensors: number;
  params: number;
  dtypes: Record<string, number>;
  /** float8 tensors that carry a scale (ComfyUI's scale_weight): each value is byte × scale. */
  scaled_f8: number;
  bytes: number;
  files: { path: string; bytes: number }[];
  bytes_on_disk: number;
}

export interface MemoryReport {
  devices: string;
  device_count: number;
  ulysses: number;
  ring: number;
  cfg: number;
  /** With layout "auto": which rule picked each degree ("auto: cfg-parallel 2: ..."). */
  layout_reason?: string;
  video: { height: number; width: number; num_frames: number };
  tokens: number;
  tokens_per_rank: number;
  weight_dtype: string;
  dit_weights_bytes: number;
  /** Two DiT blocks in flight when blocks stream from the host (persistentParams). */
  dit_streamed_bytes: number;
  /** Working copies of the weights the LoRAs change (InspectOptions.loras), beside the base weights. */
  dit_lora_bytes: number;
  dit_activation_bytes: number;
  t5_weights_bytes: number;
  /** An offloaded text encoder (--t5-offload): on the device while encoding only. */
  t5_streamed_bytes: number;
  vae_weights_bytes: number;
  vae_decode_bytes: number;
  /** CPU device lists of several ranks: what the ranks (threads of one host) hold together, the
   * figure a budget is held to. */
  host_ranks_peak_bytes?: number;
  /** Predicted peak of rank 0 per stage (models/memory_model.h). */
  stages: { encode: number; denoise: number; decode: number };
  rank0_peak_bytes: number;
  other_rank_peak_bytes: number;
  /** Beside a GPU: host memory for the streamed DiT blocks (pinned) and a text encoder on the CPU
   * (float32, with its activations); 0 when everything is on the device or the engine is on the CPU. */
  host_bytes: number;
  host_pinned_bytes: number;
  host_t5_bytes: number;
  host_activation_bytes: number;
  /** With a budget: whether it fits; persistent_params -1 = all resident fits, -2 = nothing fits;
   * auto: how an automatic budget was reached ("" for bytes). */
  budget?: { bytes: number; auto: string; fits: boolean; persistent_params: number; note: string;
    /** The longest video (4k + 1 frames, at most 1001; 0: none) within the budget at 480×832 and
     * 720×1280, untiled and tiled: every DiT weight resident, and streaming blocks as needed. */
    longest: { height: number; width: number; tiled: boolean; resident_frames: number; streamed_frames: number }[] };
}

export interface InspectReport {
  dir: string;
  layout: "official" | "diffusers" | "comfyui";
  components: { dit: ComponentReport; t5: ComponentReport; vae: ComponentReport };
  tokenizer: { dir: string; found: boolean; model?: string; pieces?: number; size?: number };
  bytes_on_disk: number;
  memory: MemoryReport;
  /** What generate would refuse that the weights' check does not see (the tokenizer: missing,
   * over its limits, malformed), as generate would say it; empty when the model can run. */
  problems: string[];
}

/** Reads and validates a model directory (memory-mapped, nothing copied) and reports on it; the
 * tokenizer is loaded as open() loads it, so a model generate would refuse is not reported clean. */
export async function inspect(dir: string, options: InspectOptions = {}): Promise<InspectReport> {
  const { cfgParallel, ...rest } = options;
  const json = await native().inspect(dir, { ...rest, cfg: cfgParallel ? 2 : 1 });
  const report = JSON.parse(json) as InspectReport;
  report.problems = [];
  try {
    await loadTokenizer(report.tokenizer.dir);
  } catch (e) {
    report.problems.push(`tokenizer: ${(e as Error).message}`);
  }
  return report;
}

export interface LoadBenchResult {
  dir: string;
  mode: "mmap" | "copy";
  load_seconds: number;
  touch_seconds: number;
  touched: boolean;
  params: number;
  bytes: number;
  rss_before_bytes: number;
  rss_after_load_bytes: number;
  rss_after_touch_bytes: number;
  peak_rss_bytes: number;
}

/** Load time and resident memory of a whole model, memory-mapped or copied. */
export async function benchLoad(dir: string, options: { mmap?: boolean; touch?: boolean } = {}): Promise<LoadBenchResult> {
  const json = await native().benchLoad(dir, { mmap: options.mmap ?? true, touch: options.touch ?? false });
  return JSON.parse(json) as LoadBenchResult;
}

/** Where the embedded default model lives: $WANLAB_HOME, else ~/.cache/wanlab. */
export function wanlabHome(): string {
  return process.env.WANLAB_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "wanlab");
}

/** The embedded default: the tiny official-layout model, written on first use. */
export async function defaultModel(onProgress?: (file: string, fraction: number) => void): Promise<string> {
  const dir = join(wanlabHome(), "models", "wan2.1-t2v-tiny");
  if (existsSync(join(dir, "config.json"))) return dir;
  // Written aside and renamed into place, so an interrupted first run never leaves half a model.
  const partial = `${dir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  try {
    await makeTiny(partial, { layout: "official", seed: 0, dims: "tiny", onProgress });
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return dir;
}

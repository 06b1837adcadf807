// The native addon (native/binding/addon.cpp), loaded once and typed. Every function that reads
// files or computes returns a Promise: the work runs on a worker thread and the event loop stays
// free; the small synchronous ones say so.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface NativeAddon {
  inspect(dir: string, options: Record<string, unknown>): Promise<string>;
  /** native/src/tools/doctor.h: the JSON of `wanlab-engine doctor`. */
  doctor(): Promise<string>;
  /** The pre-flight check and collectives of a group measured (native/src/tools/links.h): JSON. */
  checkLinks(options: Record<string, unknown>): Promise<string>;
  makeModel(out: string, options: Record<string, unknown>, onProgress?: (message: string, fraction: number) => void): Promise<string>;
  benchLoad(dir: string, options: { mmap: boolean; touch: boolean }): Promise<string>;
  /** Synchronous; see registerFatalCleanup below. */
  registerFatalCleanup(paths: string[]): void;
  /** Loads a model into a resident engine (src/engine.ts wraps it). */
  openEngine(dir: string, options?: { devices?: string; ulysses?: number; ring?: number; cfgParallel?: boolean; layout?: string; transport?: string; timeoutS?: number; rendezvous?: string; nnodes?: number; nodeRank?: number; logDir?: string; logLevel?: string;
    dtype?: string; t5Device?: string; t5Offload?: boolean; vaeDevice?: string; persistentParams?: number; shardWeights?: boolean;
    budget?: number | "auto"; budgetVideo?: { height?: number; width?: number; numFrames?: number; tiled?: boolean }; promptCacheBytes?: number }): Promise<unknown>;
  /**
   * Synchronous; the model constants the engine itself uses (native/binding/model_facts.h), as
   * JSON: {"presets": {"tiny" | "1.3B" | "14B": {"dit": {dim, ffn_dim, freq_dim, text_dim, in_dim,
   * out_dim, num_heads, num_layers, patch_size, eps, text_len}, "t5": {vocab, dim, dim_attn,
   * dim_ffn, num_heads, num_layers, num_buckets, shared_pos}, "vae": {dim, z_dim, dim_mult,
   * num_res_blocks, temporal_downsample}}}, "vaeStride": [4, 8, 8], "patch": [1, 2, 2]}.
   * Parse with JSON.parse(...) as ModelConstants.
   */
  modelConstants(): string;
  /**
   * Synchronous; a DiT's per-block facts as the engine computes them, as JSON: {"blockParams":
   * {"total", "float32"}, "shardParts": [{"elements", "bytesPerElement"}, ...], "ulyssesHeadGroups"}.
   * `dit`: JSON of an object with at least dim, ffn_dim and num_heads (a preset's "dit" from
   * modelConstants(), or an engine's info().dit); `sp`: ranks a block is sharded over (ulysses ×
   * ring); `ulysses`: the Ulysses degree; `bytesPerElement`: 4 (float32: one shard buffer) or 2
   * (bf16/f16: a buffer in that dtype and a float32 one). Parse as DitFacts.
   */
  ditFacts(dit: string, sp: number, ulysses: number, bytesPerElement: number): string;
  /**
   * Synchronous; the engine's memory model (native/src/models/memory_model.h plan_memory) for one
   * generation, as JSON: the bytes of MemoryPlanReport without device, budget_bytes, fits and
   * problem. `arch`: a preset name ("tiny", "1.3B", "14B") or the JSON of {dit, t5, vae} as an
   * engine's info() or modelConstants() gives them; `options`: the JSON of {height, width,
   * numFrames, sequenceParallel, persistentParams, shardWeights, t5OnDevice, t5Offload,
   * vaeOnDevice, tiled, tileH, tileW, bytesPerValue, gpu, ditF8, blockResiduals, encodeVideo,
   * ranksOnDevice}, every key optional (native/binding/model_facts.h). A bad value throws a
   * ParamError-shaped Error (code "WANLAB_PARAM", field).
   */
  memoryPlan(arch: string, options: string): string;
}

/** modelConstants()'s JSON. */
export interface ModelConstants {
  presets: Record<"tiny" | "1.3B" | "14B", { dit: Record<string, unknown> & { dim: number; ffn_dim: number; num_heads: number; num_layers: number; text_len: number; out_dim: number; patch_size: number[] }; t5: Record<string, unknown>; vae: Record<string, unknown> }>;
  vaeStride: [number, number, number];
  patch: [number, number, number];
}

/** ditFacts()'s JSON. */
export interface DitFacts {
  blockParams: { total: number; float32: number };
  shardParts: { elements: number; bytesPerElement: number }[];
  ulyssesHeadGroups: number;
}

/** Where the build puts the addon (cmake-js --out native/build). */
export const addonPath = fileURLToPath(new URL("../../native/build/Release/wanlab.node", import.meta.url));

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(addonPath)) {
    throw new Error(`wanlab: the native engine is not built (${addonPath} is missing); run \`npm run build\``);
  }
  addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
  return addon;
}

/**
 * The files to remove if the process dies of a fatal SIGBUS: a memory-mapped model file truncated
 * under a running engine (native/src/common/mapped_file.h). The engine then writes one line to
 * stderr naming the file, unlinks these paths and exits with status 135. Each call replaces the
 * earlier list ([] clears it); at most 8 paths; relative ones are resolved against the current
 * working directory at the call. A server registers its server.json.
 */
export function registerFatalCleanup(paths: string[]): void {
  if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string")) {
    throw new TypeError("registerFatalCleanup: paths must be an array of strings");
  }
  native().registerFatalCleanup(paths);
}

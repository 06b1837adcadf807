// The model constants the engine itself uses, read from the addon (native/binding/model_facts.h)
// instead of copied: the dims presets, the VAE stride and the DiT patch, and per DiT the parameters
// of a block, its weight-shard buffers and the Ulysses head groups; and the engine's memory model
// for a generation. Read on first use, so importing this module does not load the addon.
import { native, type DitFacts, type ModelConstants } from "./native.js";
import type { MemoryPlanReport } from "./shared/lab.js";

let constants: ModelConstants | undefined;

/** modelConstants(), parsed once. */
export function modelConstants(): ModelConstants {
  constants ??= JSON.parse(native().modelConstants()) as ModelConstants;
  return constants;
}

/** The sizes ditFacts reads of a DiT. */
export interface DitShape {
  dim: number;
  ffnDim: number;
  numHeads: number;
}

const facts = new Map<string, DitFacts>();

/** The engine's facts for a DiT of this shape: `sp` ranks a block is sharded over, `ulysses` the
 * Ulysses degree, `bytesPerElement` 4 (float32) or 2 (bf16/f16). */
export function ditFacts(d: DitShape, sp = 1, ulysses = 1, bytesPerElement = 4): DitFacts {
  const key = [d.dim, d.ffnDim, d.numHeads, sp, ulysses, bytesPerElement].join(" ");
  let f = facts.get(key);
  if (!f) {
    f = JSON.parse(native().ditFacts(JSON.stringify({ dim: d.dim, ffn_dim: d.ffnDim, num_heads: d.numHeads }), sp, ulysses, bytesPerElement)) as DitFacts;
    facts.set(key, f);
  }
  return f;
}

/** The memory model's bytes for one generation (MemoryPlanReport without what an engine adds). */
export type MemoryPlan = Omit<MemoryPlanReport, "device" | "budget_bytes" | "fits" | "problem">;

/** What the memory model (native/src/models/memory_model.h MemoryPlanOptions) is asked about;
 * every key optional, the engine's defaults otherwise (480×832×81, one rank, bf16, everything on
 * the device). */
export interface MemoryPlanOptions {
  height?: number;
  width?: number;
  numFrames?: number;
  /** ulysses × ring: the ranks the DiT's tokens are split over. */
  sequenceParallel?: number;
  persistentParams?: number;
  shardWeights?: boolean;
  t5OnDevice?: boolean;
  t5Offload?: boolean;
  vaeOnDevice?: boolean;
  tiled?: boolean;
  tileH?: number;
  tileW?: number;
  /** 2: bf16/f16 (CUDA), 4: float32 (CPU). */
  bytesPerValue?: 2 | 4;
  gpu?: boolean;
  ditF8?: boolean;
  blockResiduals?: number;
  encodeVideo?: boolean;
  /** Ranks whose DiT work shares the device (CPU ranks: threads of one host); 1: one rank's own. */
  ranksOnDevice?: number;
}

/** The engine's memory plan for a model (a preset name, or {dit, t5, vae} as an engine's info()
 * gives them) and a generation. */
export function memoryPlan(arch: "tiny" | "1.3B" | "14B" | { dit: unknown; t5: unknown; vae: unknown }, options: MemoryPlanOptions = {}): MemoryPlan {
  const a = typeof arch === "string" ? arch : JSON.stringify({ dit: arch.dit, t5: arch.t5, vae: arch.vae });
  return JSON.parse(native().memoryPlan(a, JSON.stringify(options))) as MemoryPlan;
}

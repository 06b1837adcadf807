// The analytic model of sequence parallelism's communication: what each rank hands to collectives
// per denoising step (exact: the engine's counters must equal it), the bytes that cross the links,
// and an estimate of the per-step communication time on N GPUs joined by NVLink.
//
// Notation (per rank, per denoising step):
//   T  tokens = f' · (h/2) · (w/2), with f' = (numFrames − 1)/4 + 1 latent frames, h = H/8, w = W/8
//   sp = ulysses · ring;  Ls = ceil(T / sp) tokens per rank (the sequence padded to sp · Ls)
//   D  model dim, L layers, C' = out_dim · 1 · 2 · 2 = 64 head output channels, e bytes per element
//   P  DiT passes per rank per step: 2 with CFG on one rank set (cond + uncond), 1 with cfg-parallel or cfg 1
// Handed to collectives ("bytes_sent", what the engine counts):
//   cancel flag     4                                 (int32 broadcast on the world group, every step)
//   Ulysses (u > 1) 4 · D · Ls · e per block           (all-to-all of q, k, v: 3·D·Ls; of the output: D·Ls)
//   ring (r > 1)    2 · (r − 1) · D · Ls · e per block (K and V of H/u heads × u·Ls tokens, r − 1 passes)
//   output gather   Ls · C' · e per pass (sp > 1)      (all-gather of the head output)
//   CFG velocity    16 · f' · h · w · 4 (cfg-parallel) (all-gather of the float32 velocity)
//   weight shards   Σ_g ceil(N_g / sp) · e_g per block (--shard-weights: all-gather of this rank's part
//                   of each flat buffer g; see shardParts)
//   bytes/step = 4 + P · (L · (4·[u>1] + 2·(r−1)) · D · Ls · e + [sp>1] · Ls · C' · e) + [cfg] · 16·f'·h·w·4
//                + [shard] · P · L · Σ_g ceil(N_g / sp) · e_g
//   collectives/step = 1 + P · (L · G · (2·[u>1] + (r−1)) + [sp>1]) + [cfg] + [shard] · P · L · #groups
//   G  Ulysses head groups (ulyssesHeadGroups; 1 without Ulysses): each rank's H/u heads go through
//      the all-to-alls and the ring passes in G groups so one group's transfers overlap another's
//      attention; the same bytes in G times the calls
// On the wire (what a rank sends to others): an all-to-all of S bytes sends S·(u−1)/u, a ring
// pass S, an all-gather of S bytes per rank sends (n−1)·S (ring algorithm), a broadcast ~0 per rank.
// The model constants (presets, VAE stride, patch, block parameters, shard buffers, head groups)
// are the engine's own, read from the addon (src/model-facts.ts) on first use.
import { ditFacts, modelConstants } from "./model-facts.js";
import type { Dims } from "./models.js";

export interface DitDims {
  dim: number;
  numHeads: number;
  numLayers: number;
  ffnDim: number;
  textLen: number;
  outDim?: number;  // 16
}

export interface CommLayout {
  ulysses: number;
  ring: number;
  cfgParallel: boolean;
  /** --shard-weights: each rank keeps 1/sp of every block and all-gathers it one block ahead. */
  shardWeights?: boolean;
}

export interface VideoSize {
  height: number;
  width: number;
  numFrames: number;
  cfgScale: number;
}

/** A preset's DiT sizes, as the engine's preset_arch has them. */
function presetDims(name: Dims): DitDims {
  const d = modelConstants().presets[name].dit;
  return { dim: d.dim, numHeads: d.num_heads, numLayers: d.num_layers, ffnDim: d.ffn_dim, textLen: d.text_len, outDim: d.out_dim };
}

/** The engine's dims presets (read from the addon on first use). */
export const dimsOf: Readonly<Record<Dims, DitDims>> = Object.freeze({
  get tiny() { return presetDims("tiny"); },
  get "1.3B"() { return presetDims("1.3B"); },
  get "14B"() { return presetDims("14B"); },
});

/** Latent grid and tokens of a video size (Wan2.1: VAE stride 4×8×8, patch 1×2×2, from the engine). */
export function latentGrid(s: Pick<VideoSize, "height" | "width" | "numFrames">) {
  const { vaeStride: [st, sh, sw], patch: [pt, ph, pw] } = modelConstants();
  const f = (s.numFrames - 1) / st + 1, h = s.height / sh, w = s.width / sw;
  return { f, h, w, tokens: (f / pt) * (h / ph) * (w / pw) };
}

export interface StepComm {
  tokens: number;
  tokensPerRank: number;     // Ls
  passes: number;            // P
  bytesSent: number;         // handed to collectives, per rank per step (the engine's bytes_sent)
  collectives: number;       // per rank per step
  wireBytes: number;         // sent over links to other ranks, per rank per step
  terms: Record<string, number>;  // bytesSent by source
}

/** Parameters of one DiT block, as the engine counts them (native/src/models/memory_model.h
 * dit_block_params): self and cross attention (4 linears with bias, RMSNorm weights of q and k),
 * norm3's weight and bias, the FFN and the [6, D] modulation. `float32`: the ones the engine keeps
 * in float32 whatever the compute dtype (norm3 and the modulation). */
export function blockParams(d: DitDims): { total: number; float32: number } {
  return ditFacts(d).blockParams;
}

/** A sharded block's flat buffers, as the engine makes them (dit_shard_parts): one per dtype, each
 * padded to a multiple of sp; a rank keeps and all-gathers `elements` of each. With `e` = 4 the
 * engine computes in float32 and there is one buffer. */
export function shardParts(d: DitDims, sp: number, e: number): { elements: number; bytesPerElement: number }[] {
  return ditFacts(d, sp, 1, e).shardParts;
}

/** Head groups Ulysses pipelines per rank, as the engine chooses them (native/src/parallel/ulysses.h
 * ulysses_head_groups): the largest divisor of the rank's H/u heads that is at most 2. */
export function ulyssesHeadGroups(numHeads: number, ulysses: number): number {
  // Only the heads matter to the groups; dim and ffnDim are placeholders the call requires.
  return ditFacts({ dim: 1, ffnDim: 1, numHeads }, 1, ulysses).ulyssesHeadGroups;
}

/** Per rank and per denoising step; `e` bytes per activation element (4 float32, 2 bf16). */
export function stepComm(d: DitDims, l: CommLayout, s: VideoSize, e = 4): StepComm {
  const { f, h, w, tokens } = latentGrid(s);
  const u = l.ulysses, r = l.ring, sp = u * r;
  const Ls = Math.ceil(tokens / sp);
  const cfg = s.cfgScale !== 1;
  const P = cfg && !l.cfgParallel ? 2 : 1;
  // C' = out_dim · the patch volume: head output channels; out_dim is the latent's channel count
  const [pt, ph, pw] = modelConstants().patch, z = d.outDim ?? 16;
  const C = z * pt * ph * pw;
  const D = d.dim, L = d.numLayers;
  const ulyssesBlock = u > 1 ? 4 * D * Ls * e : 0;
  const ringBlock = r > 1 ? 2 * (r - 1) * D * Ls * e : 0;
  const gather = sp > 1 ? Ls * C * e : 0;
  const velocity = l.cfgParallel && cfg ? z * f * h * w * 4 : 0;
  const parts = l.shardWeights && sp > 1 ? shardParts(d, sp, e) : [];
  const shardBlock = parts.reduce((a, p) => a + p.elements * p.bytesPerElement, 0);
  const terms = { cancel_flag: 4, ulysses: P * L * ulyssesBlock, ring: P * L * ringBlock, output_gather: P * gather, cfg_velocity: velocity,
    weight_shards: P * L * shardBlock };
  const bytesSent = Object.values(terms).reduce((a, b) => a + b, 0);
  const G = ulyssesHeadGroups(d.numHeads, u);
  const collectives = 1 + P * (L * G * ((u > 1 ? 2 : 0) + (r - 1)) + (sp > 1 ? 1 : 0)) + (l.cfgParallel && cfg ? 1 : 0) + P * L * parts.length;
  const wireBytes = P * L * (ulyssesBlock * (u - 1) / u + ringBlock + shardBlock * (sp - 1)) + P * gather * (sp - 1) +
    (l.cfgParallel && cfg ? velocity : 0);
  return { tokens, tokensPerRank: Ls, passes: P, bytesSent, collectives, wireBytes, terms };
}

export interface GpuEstimate {
  gpus: number;
  layout: string;
  ulysses: number;
  ring: number;
  tokensPerRank: number;
  wireGBPerStep: number;
  collectivesPerStep: number;
  /** wire bytes / link bandwidth + collectives × latency: the transfer time, before the engine hides
   * part of it behind attention (ring passes, Ulysses head groups). */
  commSecondsPerStep: number;
  /** What --shard-weights adds: every block's weights all-gathered once per pass (bf16 and the float32
   * norm3 + modulation), on the wire per rank per step and its transfer time at the same link rate;
   * the engine gathers block i+1 while block i computes. */
  shardWireGBPerStep: number;
  shardCommSecondsPerStep: number;
}

/**
 * Per-step communication time on N GPUs of one NVLink domain: every rank sends its wire bytes at
 * `linkGBps` (per direction, per GPU: H100 SXM NVLink 4 ≈ 450 GB/s) plus `latencyUs` per collective.
 * bf16 activations (e = 2).
 */
export function gpuEstimate(d: DitDims, s: VideoSize, gpus: number[], o: { linkGBps?: number; latencyUs?: number } = {}): GpuEstimate[] {
  const bw = (o.linkGBps ?? 450) * 1e9, lat = (o.latencyUs ?? 20) * 1e-6;
  const out: GpuEstimate[] = [];
  for (const n of gpus) {
    for (const [name, u, r] of [["ulysses", n, 1], ["ring", 1, n]] as const) {
      if (d.numHeads % u !== 0) continue;
      const c = stepComm(d, { ulysses: u, ring: r, cfgParallel: false }, s, 2);
      const sharded = stepComm(d, { ulysses: u, ring: r, cfgParallel: false, shardWeights: true }, s, 2);
      const shardWire = sharded.wireBytes - c.wireBytes, shardCalls = sharded.collectives - c.collectives;
      out.push({ gpus: n, layout: name, ulysses: u, ring: r, tokensPerRank: c.tokensPerRank, wireGBPerStep: c.wireBytes / 1e9,
        collectivesPerStep: c.collectives, commSecondsPerStep: c.wireBytes / bw + c.collectives * lat,
        shardWireGBPerStep: shardWire / 1e9, shardCommSecondsPerStep: shardWire / bw + shardCalls * lat });
    }
  }
  return out;
}

// `wanlab bench parallel`: every sequence-parallel layout on CPU ranks (threads of this process,
// Gloo over loopback) on one small model and video, against the analytic model of
// src/parallel-model.ts: measured bytes per step per rank (must equal the formula), collectives,
// compute vs communication seconds, peak memory per rank (against the engine's memory model,
// native/src/models/memory_model.h, through the addon), and the latents' relative L2 against one
// rank. CPU ranks share this machine's cores: the seconds are not speed-up claims.
import { readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { open, type RankTimings } from "./engine.js";
import { memoryPlan } from "./model-facts.js";
import { makeTiny } from "./models.js";
import { blockParams, dimsOf, gpuEstimate, latentGrid, stepComm, type DitDims, type GpuEstimate } from "./parallel-model.js";

export interface ParallelLayoutSpec {
  name: string;
  devices: string;
  ulysses: number;
  ring: number;
  cfgParallel: boolean;
  /** --shard-weights: each rank keeps 1/(ulysses·ring) of every DiT block. */
  shardWeights?: boolean;
}

/** The layouts of issue 5 (1 rank, Ulysses 2/4, ring 2/4, 2×2 hybrid, CFG-parallel, CFG × Ulysses)
 * and two with sharded weights, to set their memory and time beside the same layout unsharded. */
export const parallelLayouts: ParallelLayoutSpec[] = [
  { name: "1 rank", devices: "cpu", ulysses: 1, ring: 1, cfgParallel: false },
  { name: "ulysses 2", devices: "cpu:0-1", ulysses: 2, ring: 1, cfgParallel: false },
  { name: "ring 2", devices: "cpu:0-1", ulysses: 1, ring: 2, cfgParallel: false },
  { name: "ulysses 4", devices: "cpu:0-3", ulysses: 4, ring: 1, cfgParallel: false },
  { name: "ring 4", devices: "cpu:0-3", ulysses: 1, ring: 4, cfgParallel: false },
  { name: "2x2 hybrid", devices: "cpu:0-3", ulysses: 2, ring: 2, cfgParallel: false },
  { name: "cfg-parallel", devices: "cpu:0-1", ulysses: 1, ring: 1, cfgParallel: true },
  { name: "cfg x ulysses 2", devices: "cpu:0-3", ulysses: 2, ring: 1, cfgParallel: true },
  { name: "ulysses 2 sharded", devices: "cpu:0-1", ulysses: 2, ring: 1, cfgParallel: false, shardWeights: true },
  { name: "2x2 hybrid sharded", devices: "cpu:0-3", ulysses: 2, ring: 2, cfgParallel: false, shardWeights: true },
];

export interface BenchParallelOptions {
  /** Model directory; default: the tiny model with 8 heads (written under workDir). */
  model?: string;
  workDir?: string;
  height?: number;
  width?: number;
  numFrames?: number;
  steps?: number;
  cfgScale?: number;
  seed?: number;
  layouts?: string[];  // names from parallelLayouts; default all
  /** Before each layout: its name, its index and the number of layouts. */
  onLayout?: (name: string, index: number, count: number) => void;
}

export interface LayoutResult extends ParallelLayoutSpec {
  ranks: number;
  seconds_per_step: number;
  /** Per rank, per step (the first step; every step moves the same bytes). */
  bytes_per_step: number[];
  bytes_per_step_analytic: number;
  bytes_terms_analytic: Record<string, number>;
  wire_bytes_per_step_analytic: number;
  collectives_per_step: number[];
  collectives_per_step_analytic: number;
  compute_s: number[];
  comm_s: number[];
  comm_fraction: number[];
  peak_bytes: number[];
  peak_bytes_analytic: number;
  /** DiT parameters each rank holds for good (all of them, or with sharded weights 1/sp of each
   * block plus the embeddings and head), as the engine reports them and as blockParams predicts. */
  dit_params_per_rank: number;
  dit_params_per_rank_analytic: number;
  /** Sharded layouts: seconds per step over the same layout's unsharded one (measured in this run). */
  time_vs_unsharded?: number;
  checks: number[];
  check_s: number[];
  check_fraction: number;
  tokens_per_rank: number;
  rel_l2_vs_1_rank: number;
}

export interface BenchParallelReport {
  bench: "parallel";
  model: string;
  dims: DitDims;
  input: { height: number; width: number; numFrames: number; steps: number; cfgScale: number; seed: number; tokens: number };
  cores: number;
  note: string;
  formula: { bytes: string; peak: string; params: string };
  layouts: LayoutResult[];
  gpu_estimate: { model: string; input: Record<string, number>; linkGBps: number; latencyUs: number; rows: GpuEstimate[] };
}

/** DiT parameters a rank holds for good: every one, or with sharded weights the embeddings and head
 * plus its part of each block (the part of each flat buffer, padding included). `outside`: the
 * parameters not in blocks. */
export function ditParamsPerRank(d: DitDims, outside: number, sp: number, shardWeights: boolean): number {
  const perBlock = blockParams(d).total;
  return outside + d.numLayers * (shardWeights && sp > 1 ? Math.ceil(perBlock / sp) : perBlock);
}

const peakFormula =
  "the engine's memory model for one rank's denoise stage (native/src/models/memory_model.h plan_memory, float32, sequence_parallel = u·r, one rank on the device): dit_activation_bytes + dit_streamed_bytes = ceil(T/(u·r))·D·max(36, 12 + 4·F/D) B + [shard]·2 gathered blocks·N·4 B, N = block params; the DiT's self-attention or FFN sublayer, text-length terms not counted";
const bytesFormula =
  "4 + P·(L·(4·[u>1] + 2·(r−1))·D·Ls·e + [sp>1]·Ls·C'·e) + [cfg-parallel]·16·f'·h·w·4 + [shard]·P·L·ceil(N/sp)·e, Ls = ceil(T/(u·r)), P = 2 with CFG on one rank set, else 1 (src/parallel-model.ts)";
const paramsFormula = "outside blocks + L·N, or with sharded weights outside + L·ceil(N/sp); N = block params (blockParams)";

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! - b[i]!;
    num += x * x;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num / den);
}

/** The tiny model with num_heads 8 in config.json (head dim 32, RoPE axes 12/10/10), so Ulysses 4 divides the heads. */
export async function tinyEightHeads(workDir: string): Promise<string> {
  const dir = join(workDir, "tiny-8heads");
  if (!existsSync(join(dir, "config.json"))) {
    mkdirSync(workDir, { recursive: true });
    await makeTiny(dir);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    config.num_heads = 8;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  }
  return dir;
}

export async function benchParallel(o: BenchParallelOptions = {}): Promise<BenchParallelReport> {
  const workDir = o.workDir ?? join(tmpdir(), "wanlab-bench-parallel");
  const model = o.model ?? (await tinyEightHeads(workDir));
  const params = { prompt: "a red fox running through snow", seed: o.seed ?? 1, height: o.height ?? 128, width: o.width ?? 128,
    numFrames: o.numFrames ?? 9, numInferenceSteps: o.steps ?? 2, cfgScale: o.cfgScale ?? 5 };
  const specs = o.layouts ? o.layouts.map((n) => {
    const s = parallelLayouts.find((l) => l.name === n);
    if (!s) throw new Error(`bench parallel: unknown layout '${n}' (known: ${parallelLayouts.map((l) => l.name).join(", ")})`);
    return s;
  }) : parallelLayouts;
  if (specs[0]?.name !== "1 rank") specs.unshift(parallelLayouts[0]!);
  let dims: DitDims | undefined;
  let reference: Float32Array | undefined;
  let outside: number | undefined;
  const results: LayoutResult[] = [];
  for (const [index, spec] of specs.entries()) {
    o.onLayout?.(spec.name, index, specs.length);
    const lab = await open({ model, devices: spec.devices, ulysses: spec.ulysses, ring: spec.ring, cfgParallel: spec.cfgParallel,
      shardWeights: spec.shardWeights, timeoutS: 120 });
    try {
      const a = lab.info.dit as Record<string, number>;
      dims ??= { dim: a.dim!, numHeads: a.num_heads!, numLayers: a.num_layers!, ffnDim: a.ffn_dim!, textLen: a.text_len!, outDim: a.out_dim };
      await lab.generate({ ...params, numInferenceSteps: 1 });  // warm-up: first touches of buffers and connections
      const r = await lab.generate(params, { returnTensors: true });
      const latents = r.tensors!.latents.data;
      reference ??= latents;
      const c = stepComm(dims, spec, { ...params, cfgScale: params.cfgScale }, 4);
      const sp = spec.ulysses * spec.ring, shard = spec.shardWeights === true;
      const placement = lab.info.placement!;
      // The parameters outside the blocks, from an unsharded layout (its blocks are whole).
      if (!shard) outside ??= placement.dit_resident_params - dims.numLayers * blockParams(dims).total;
      if (outside === undefined) throw new Error("bench parallel: a sharded layout needs an unsharded one before it (1 rank runs first)");
      if (shard && placement.dit_weight_shards !== sp)
        throw new Error(`bench parallel: ${spec.name}: the engine holds ${placement.dit_weight_shards} weight shards, expected ${sp}`);
      // One rank's denoise stage as the engine's memory model counts it: its share of the DiT's
      // activations and, with sharded weights, the two gathered blocks; what the measured peak
      // (allocations on the rank's thread during the request) is set beside.
      const plan = memoryPlan(lab.info, { height: params.height, width: params.width, numFrames: params.numFrames, sequenceParallel: sp,
        shardWeights: shard, bytesPerValue: 4, gpu: false, ranksOnDevice: 1 });
      const unsharded = shard ? results.find((x) => !x.shardWeights && x.ulysses === spec.ulysses && x.ring === spec.ring && !x.cfgParallel) : undefined;
      const ranks: RankTimings[] = r.timings.ranks ?? [];
      const steps = params.numInferenceSteps;
      const stepSeconds = r.timings.step_s.reduce((x, y) => x + y, 0) / steps;
      const one = ranks.length === 0;
      const checks = ranks.map((k) => k.checks ?? 0), checkS = ranks.map((k) => k.check_s ?? 0);
      results.push({
        ...spec,
        ranks: one ? 1 : ranks.length,
        seconds_per_step: stepSeconds,
        bytes_per_step: one ? [0] : ranks.map((k) => k.step_bytes![0]!),
        bytes_per_step_analytic: one ? 0 : c.bytesSent,
        bytes_terms_analytic: one ? {} : c.terms,
        wire_bytes_per_step_analytic: one ? 0 : c.wireBytes,
        collectives_per_step: one ? [0] : ranks.map((k) => k.collectives / steps),
        collectives_per_step_analytic: one ? 0 : c.collectives,
        compute_s: one ? [r.timings.denoise_s] : ranks.map((k) => k.compute_s!),
        comm_s: one ? [0] : ranks.map((k) => k.comm_s),
        comm_fraction: one ? [0] : ranks.map((k) => k.comm_s / (k.comm_s + k.compute_s!)),
        peak_bytes: one ? [] : ranks.map((k) => k.peak_bytes!),
        peak_bytes_analytic: plan.dit_activation_bytes + plan.dit_streamed_bytes,
        dit_params_per_rank: placement.dit_resident_params,
        dit_params_per_rank_analytic: ditParamsPerRank(dims, outside, sp, shard),
        ...(unsharded ? { time_vs_unsharded: stepSeconds / unsharded.seconds_per_step } : {}),
        checks,
        check_s: checkS,
        check_fraction: one ? 0 : Math.max(...ranks.map((k) => (k.check_s ?? 0) / (k.comm_s + k.compute_s!))),
        tokens_per_rank: c.tokensPerRank,
        rel_l2_vs_1_rank: relL2(latents, reference),
      });
    } finally {
      await lab.close();
    }
  }
  const big = { height: 720, width: 1280, numFrames: 81, cfgScale: 5 };
  return {
    bench: "parallel",
    model,
    dims: dims!,
    input: { height: params.height, width: params.width, numFrames: params.numFrames, steps: params.numInferenceSteps, cfgScale: params.cfgScale,
      seed: params.seed, tokens: latentGrid(params).tokens },
    cores: availableParallelism(),
    note: `CPU ranks are threads sharing this machine's ${availableParallelism()} cores (Gloo over loopback): the seconds show where time goes, not a speed-up.`,
    formula: { bytes: bytesFormula, peak: peakFormula, params: paramsFormula },
    layouts: results,
    gpu_estimate: { model: "Wan2.1 14B, bf16, cfg 5 (2 passes per step), 720x1280, 81 frames", input: big, linkGBps: 450, latencyUs: 20,
      rows: gpuEstimate(dimsOf["14B"], big, [2, 4, 8]) },
  };
}

/** A self-contained plotly HTML page (plotly.js inlined, no CDN) of a bench parallel report. */
export function benchParallelHtml(r: BenchParallelReport): string {
  const names = r.layouts.map((l) => l.name);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const figs: { title: string; data: unknown[]; layout: Record<string, unknown> }[] = [
    { title: "bytes handed to collectives per rank per step: measured vs analytic", layout: { barmode: "group", yaxis: { title: "bytes" } },
      data: [
        { type: "bar", name: "measured (rank 0)", x: names, y: r.layouts.map((l) => l.bytes_per_step[0]) },
        { type: "bar", name: "analytic", x: names, y: r.layouts.map((l) => l.bytes_per_step_analytic) },
      ] },
    { title: "peak memory per rank in the denoise stage: measured (mean of ranks) vs the engine's memory model", layout: { barmode: "group", yaxis: { title: "MiB" } },
      data: [
        { type: "bar", name: "measured", x: names, y: r.layouts.map((l) => mean(l.peak_bytes) / 2 ** 20) },
        { type: "bar", name: "analytic", x: names, y: r.layouts.map((l) => l.peak_bytes_analytic / 2 ** 20) },
      ] },
    { title: "DiT parameters each rank holds for good: measured vs analytic (sharded layouts keep 1/sp of every block)",
      layout: { barmode: "group", yaxis: { title: "parameters" } },
      data: [
        { type: "bar", name: "measured", x: names, y: r.layouts.map((l) => l.dit_params_per_rank) },
        { type: "bar", name: "analytic", x: names, y: r.layouts.map((l) => l.dit_params_per_rank_analytic) },
      ] },
    { title: `compute vs communication per rank (mean), ${r.input.steps} steps — ${r.note}`, layout: { barmode: "stack", yaxis: { title: "seconds" } },
      data: [
        { type: "bar", name: "compute", x: names, y: r.layouts.map((l) => mean(l.compute_s)) },
        { type: "bar", name: "communication (blocked)", x: names, y: r.layouts.map((l) => mean(l.comm_s)) },
      ] },
    { title: "latents relative L2 vs 1 rank", layout: { yaxis: { title: "rel L2", type: "log" } },
      data: [{ type: "bar", x: names, y: r.layouts.map((l) => Math.max(l.rel_l2_vs_1_rank, 1e-12)) }] },
    { title: `model: ${r.gpu_estimate.model}, NVLink ${r.gpu_estimate.linkGBps} GB/s per direction: communication per step`,
      layout: { barmode: "group", xaxis: { title: "GPUs" }, yaxis: { title: "seconds per step (no overlap)" } },
      data: ["ulysses", "ring"].map((name) => {
        const rows = r.gpu_estimate.rows.filter((x) => x.layout === name);
        return { type: "bar", name, x: rows.map((x) => String(x.gpus)), y: rows.map((x) => x.commSecondsPerStep) };
      }) },
  ];
  const plotly = readFileSync(createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min"), "utf8").replace(/<\/script/gi, "<\\/script");
  const divs = figs.map((_, i) => `<div id="f${i}" style="width:100%;max-width:960px;height:420px"></div>`).join("\n");
  const spec = JSON.stringify(figs.map((f) => ({ data: f.data, layout: { title: { text: f.title, font: { size: 13 } }, ...f.layout } }))).replace(/</g, "\\u003c");
  return `<!doctype html><meta charset="utf-8"><title>wanlab bench parallel</title>
<h3 style="font-family:sans-serif">wanlab bench parallel — ${r.input.height}×${r.input.width}×${r.input.numFrames}, ${r.input.tokens} tokens, dim ${r.dims.dim}, ${r.dims.numHeads} heads, ${r.dims.numLayers} layers</h3>
<p style="font-family:sans-serif">${r.note}</p>
${divs}
<script>${plotly}</script>
<script>const figs = ${spec}; figs.forEach((f, i) => Plotly.newPlot("f" + i, f.data, f.layout, { displaylogo: false }));</script>
`;
}

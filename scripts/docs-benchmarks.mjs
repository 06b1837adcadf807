#!/usr/bin/env node
// Prints the markdown tables of docs/benchmarks.md from the JSON files in bench/results/*/.
// Usage: node scripts/docs-benchmarks.mjs [RESULTS_DIR]
// docs/benchmarks.md holds this output between <!-- tables:begin --> and <!-- tables:end -->;
// test/docs.test.ts checks that the two are equal.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const resultsDir = resolve(process.argv[2] ?? join(root, "bench", "results"));

/** A file's name as the tables show it: a run named after the engine version it ran on is named
 *  by what it measured instead (transfers waited before the compute after them). */
function fileLabel(file) {
  return /_before_[0-9a-f]{7,40}\.json$/.test(file) ? "the same run, no overlap" : `\`${file}\``;
}

/** Every JSON result: { set, file, json }, sorted by set then file name. */
function loadResults(dir) {
  const out = [];
  for (const set of readdirSync(dir).sort()) {
    const setDir = join(dir, set);
    if (!statSync(setDir).isDirectory()) continue;
    for (const file of readdirSync(setDir).sort()) {
      if (!file.endsWith(".json")) continue;
      out.push({ set, file, json: JSON.parse(readFileSync(join(setDir, file), "utf8")) });
    }
  }
  return out;
}

const fx = (x, d) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "–");
const sci = (x) => (typeof x === "number" && Number.isFinite(x) ? (x === 0 ? "0" : x.toExponential(1)) : "–");
const unit = (x, d, u) => (typeof x === "number" && Number.isFinite(x) ? `${x.toFixed(d)} ${u}` : "–");
const gb = (b) => fx(b / 1e9, 2);
const mib = (b) => fx(b / 2 ** 20, 1);
const ms = (s) => fx(s * 1e3, 3);
const int = (n) => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, " ");
const link = (set) => `[${set}](../bench/results/${set})`;
const mean = (a) => (Array.isArray(a) && a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
const max = (a) => (Array.isArray(a) && a.length ? Math.max(...a) : NaN);
const first = (o) => (o && typeof o === "object" ? Object.values(o)[0] : undefined);

function table(headers, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

function videoSize(v) {
  return v ? `${v.height}×${v.width}×${v.frames ?? v.numFrames}` : "–";
}

function ditTable(results) {
  const rows = results
    .filter((r) => r.json.bench === "dit")
    .map(({ set, file, json: j }) => {
      const ours = j.ours ?? {};
      const peer = j.peer;
      const cfg = `${j.dims} ${videoSize(j.input)} (${int(j.input?.tokens ?? NaN)} tokens)${/aten/.test(file) ? ", own kernels off" : ""}`;
      const we = `${fx(ours.median_s, 3)} s, ${fx(ours.gflops_per_s / 1e3, 0)} TFLOP/s, act. ${gb(ours.device_activation_peak_bytes)} GB`;
      const pe = peer ? `${fx(peer.median_s, 3)} s, ${fx(peer.gflops_per_s / 1e3, 0)} TFLOP/s, act. ${gb(peer.device_activation_peak_bytes)} GB` : "–";
      return [link(set), `\`${file}\``, cfg, we, pe, fx(j.ratio_peer_over_ours, 2), sci(j.rel_l2_ours_vs_peer), j.device];
    });
  return table(["results", "file", "config", "wanlab", "DiffSynth, PyTorch eager", "peer / wanlab", "rel L2 vs peer", "device"], rows);
}

function t2vOptions(j) {
  const p = j.placement ?? {};
  const o = [];
  if (p.memory_budget_bytes > 0) o.push(`budget ${gb(p.memory_budget_bytes)} GB`);
  if (p.dit_offloaded_params > 0) o.push(`${fx(p.dit_resident_params / 1e9, 2)}G params resident`);
  if (p.dit_f8_params > 0) o.push("float8 block linears");
  if (p.t5 && p.t5.startsWith("cpu")) o.push("T5 on CPU");
  if (p.t5_offload) o.push("T5 offloaded");
  if (j.video?.tiled) o.push("tiled");
  if (j.v2v_strength > 0) o.push(`v2v ${j.v2v_strength}`);
  return o.length ? o.join(", ") : "all resident";
}

function stages(o, f) {
  if (!o) return "–";
  return ["encode", "denoise", "decode"].map((s) => f(first(o[s]) ?? o[s])).join(" / ");
}

function t2vTable(results) {
  const rows = results
    .filter((r) => r.json.bench === "t2v")
    .map(({ set, file, json: j }) => [
      link(set),
      `\`${file}\``,
      `${j.dims} ${videoSize(j.video)}, cfg ${j.video?.cfg_scale ?? "–"}; ${t2vOptions(j)}`,
      `${fx(j.step_median_s, 3)} s, ${fx(j.step_fraction_of_peak * 100, 0)} % of peak`,
      `${fx(j.encode_s, 2)} s / ${fx(j.decode_s, 2)} s`,
      `${fx(j.full_estimate_s, 1)} s`,
      `${fx(j.full_flop_bound_s, 1)} s (×${fx(j.full_over_flop_bound, 2)})`,
      `${stages(j.device_peak_bytes, gb)} GB`,
      j.predicted_over_measured ? stages(j.predicted_over_measured, (x) => fx(x, 2)) : "–",
      j.device,
    ]);
  return table(
    ["results", "file", "config", "one step", "T5 / VAE decode", "50 steps (estimate)", "FLOP bound", "peak encode / denoise / decode", "predicted / measured", "device"],
    rows,
  );
}

function elementwiseTable(results) {
  const rows = [];
  for (const { set, file, json: j } of results.filter((r) => r.json.bench === "elementwise")) {
    for (const op of j.ops ?? []) {
      rows.push([link(set), `\`${file}\``, `d ${j.dim}, ${int(j.tokens)} tokens`, op.op, `${ms(op.median_s)} ms`, unit(op.achieved_gb_per_s / 1e3, 2, "TB/s"), unit(op.fused_at_copy_bandwidth_s * 1e3, 3, "ms"), "–", j.device]);
    }
    for (const k of j.own_kernels ?? []) {
      rows.push([link(set), `\`${file}\``, `d ${j.dim}, ${int(j.tokens)} tokens`, k.op, `${ms(k.median_s)} ms`, unit(k.achieved_gb_per_s / 1e3, 2, "TB/s"), "–", `×${fx(k.aten_over_own, 2)}`, j.device]);
    }
  }
  return table(["results", "file", "config", "op", "median", "achieved", "at copy bandwidth", "ATen / own", "device"], rows);
}

function attentionTable(results) {
  const rows = [];
  for (const { set, file, json: j } of results.filter((r) => r.json.bench === "attention")) {
    for (const b of j.backends ?? []) {
      rows.push([link(set), `\`${file}\``, `${j.dtype} [${(j.shape ?? []).join(", ")}]`, b.backend, `${ms(b.median_s)} ms, ${fx(b.tflops_per_s, 0)} TFLOP/s`, sci(b.rel_l2_vs_f32_math), j.device]);
    }
  }
  for (const { set, file, json: j } of results.filter((r) => r.json.bench === "matmul")) {
    rows.push([link(set), `\`${file}\``, `${j.dtype} ${j.n}³ matmul`, "–", `${ms(j.median_s)} ms, ${fx(j.tflops_per_s, 0)} TFLOP/s`, "–", j.device]);
  }
  return table(["results", "file", "config", "backend", "figure", "rel L2 vs f32", "device"], rows);
}

function parityTable(results) {
  const parts = ["t5", "dit", "dit_offloaded", "vae_decode", "t2v_latents", "t2v_video"];
  const rows = results
    .filter((r) => r.file.startsWith("parity"))
    .map(({ set, file, json: j }) => [
      link(set),
      `\`${file}\``,
      `${videoSize(j.video)}, ${j.steps} steps, cfg ${j.video?.cfg_scale ?? "–"}`,
      ...parts.map((p) => (j[p] ? sci(j[p].rel_l2) : "–")),
      `${j.device} (${(j.placement?.dit ?? []).join(", ")}) vs cpu f32`,
    ]);
  return table(["results", "file", "config", "UMT5", "DiT", "DiT streamed", "VAE decode", "latents", "video", "device"], rows);
}

function overlapTable(results) {
  const rows = results
    .filter((r) => r.json.bench === "overlap")
    .map(({ set, file, json: j }) => [
      link(set),
      `\`${file}\``,
      `${j.layout}, ${j.ranks} ranks, ${j.heads} heads${j.ulysses_head_groups > 1 ? ` (${j.ulysses_head_groups} groups)` : ""}, ${int(j.tokens)} tokens`,
      `${fx(j.overlapped?.median_s, 3)} s, ${fx(j.overlapped?.exposed_comm_s * 1e3, 1)} ms blocked`,
      `${fx(j.sequential?.median_s, 3)} s, ${fx(j.sequential?.exposed_comm_s * 1e3, 1)} ms blocked`,
      fx(j.sequential_over_overlapped, 2),
      sci(j.rel_l2_between_schedules),
      j.device,
    ]);
  return table(["results", "file", "config", "overlapped (the engine)", "sequential", "sequential / overlapped", "rel L2", "device"], rows);
}

function parallelTable(results) {
  const rows = [];
  for (const { set, file, json: j } of results.filter((r) => r.json.bench === "parallel")) {
    for (const l of j.layouts ?? []) {
      if (l.ranks === 1) continue;
      rows.push([
        link(set),
        fileLabel(file),
        `${l.name}, ${videoSize(j.input)}, ${int(j.input?.tokens ?? NaN)} tokens`,
        `${int(max(l.bytes_per_step))} (${int(l.bytes_per_step_analytic)})`,
        `${max(l.collectives_per_step)} (${l.collectives_per_step_analytic})`,
        `${mib(max(l.peak_bytes))} (${mib(l.peak_bytes_analytic)})`,
        l.dit_params_per_rank !== undefined ? `${int(l.dit_params_per_rank)} (${int(l.dit_params_per_rank_analytic)})` : "–",
        fx(mean(l.comm_s), 3),
        l.time_vs_unsharded !== undefined ? `${fx(l.time_vs_unsharded, 2)}×` : "–",
        sci(l.rel_l2_vs_1_rank),
        `cpu, ${j.cores} cores`,
      ]);
    }
  }
  return table(
    ["results", "file", "layout", "bytes/step/rank (analytic)", "collectives/step (analytic)", "peak MiB/rank (analytic)", "DiT params/rank (analytic)", "exposed comm s", "time vs unsharded", "rel L2 vs 1 rank", "device"],
    rows,
  );
}

function gpuEstimateTable(results) {
  const rows = [];
  // The estimate is a formula, not a measurement: only the current run's rows.
  for (const { set, file, json: j } of results.filter((r) => r.json.bench === "parallel" && r.json.gpu_estimate && !fileLabel(r.file).startsWith("the same"))) {
    const g = j.gpu_estimate;
    for (const row of g.rows ?? []) {
        rows.push([link(set), `\`${file}\``, String(row.gpus), `${row.layout} ${row.gpus}`, int(row.tokensPerRank), `${fx(row.wireGBPerStep, 1)} GB`, String(row.collectivesPerStep), `${fx(row.commSecondsPerStep * 1e3, 0)} ms`, `model: ${g.linkGBps} GB/s, ${g.latencyUs} µs`]);
    }
  }
  return table(["results", "file", "GPUs", "layout", "tokens/rank", "on the wire per rank/step", "collectives", "comm per step", "device"], rows);
}

export function renderTables(dir = resultsDir) {
  const results = loadResults(dir);
  const sections = [
    ["DiT forward, bf16, CFG off (`wanlab-engine bench dit`)", ditTable(results)],
    ["Whole pipeline (`wanlab-engine bench t2v`)", t2vTable(results)],
    ["Parity, GPU bf16 against CPU float32 on the tiny model (`wanlab-engine parity`)", parityTable(results)],
    ["Attention backends and the matmul peak (`wanlab-engine bench attention|matmul`)", attentionTable(results)],
    ["Elementwise passes and own kernels (`wanlab-engine bench elementwise`)", elementwiseTable(results)],
    ["Sequence-parallel layouts on CPU ranks (`wanlab bench parallel --json`)", parallelTable(results)],
    ["The model for N GPUs (`gpuEstimate`, Wan2.1 14B 720×1280×81, cfg 5)", gpuEstimateTable(results)],
    ["Overlapped against sequential transfers (`wanlab-engine bench overlap`)", overlapTable(results)],
  ];
  return sections.map(([title, body]) => `### ${title}\n\n${body}\n`).join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(renderTables());
}

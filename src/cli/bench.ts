// `wanlab bench dit|vae|t5|load|parallel|projection`: model forwards against PyTorch eager,
// checkpoint loading (mmap against copy), the parallel layouts, and the N-GPU projection.
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { benchModel, engineJson, type BenchKind, type BenchSide } from "../bench.js";
import { benchProjection, isProjectionLayout, projectionHtml, projectionScript, type ProjectionOptions } from "../bench-projection.js";
import { checkOutputFile, commitFile, type OutputFileOptions, tempBeside } from "../fs/safe-output.js";
import type { Dims } from "../models.js";
import { choicesOf, rangeOf } from "../options/table.js";
import { formatBytes, table } from "../terminal/format.js";
import { terminalProgress } from "../terminal/progress.js";
import { didYouMean } from "./suggest.js";
import { choice, deviceOption, help, intOption, numberOption, parseCommand, UsageError, type Dtype } from "./parse.js";

type Link = NonNullable<ProjectionOptions["link"]>;

/** `wanlab bench dit|vae|t5`: ours against PyTorch eager on DiffSynth's module, same weights and input. */
async function cmdBenchModel(kind: BenchKind, args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "bench-model");
  if (v.help) return help("bench-model");
  const int = (name: string) => intOption(name, v[name] as string | undefined, ...rangeOf("bench-model", name));
  const report = await benchModel(kind, {
    dims: choice("dims", v.dims as string | undefined, choicesOf<Dims>("bench-model", "dims")),
    layers: int("layers"),
    frames: int("frames"),
    height: int("height"),
    width: int("width"),
    tokens: int("tokens"),
    iters: int("iters"),
    warmup: int("warmup"),
    threads: int("threads"),
    diffsynth: v.diffsynth as string | undefined,
    python: v.python as string | undefined,
    peer: v["no-peer"] !== true,
    device: deviceOption("device", v.device),
    dtype: choice("dtype", v.dtype as string | undefined, choicesOf<Dtype>("bench-model", "dtype")),
  });
  if (v.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const r = report;
  const side = (name: string, s: BenchSide) => [name, `${s.median_s.toFixed(3)} s`, `${s.gflops_per_s.toFixed(1)} GFLOP/s`, formatBytes(s.peak_rss_bytes)];
  const rows = [["", "median", "throughput", "peak RSS"], side("wanlab", r.ours)];
  if (r.peer) rows.push(side("PyTorch eager", r.peer));
  console.log(table(rows, [1, 2, 3]));
  console.log(r.peer ? `PyTorch / wanlab time: ${r.ratio_peer_over_ours?.toFixed(2)} (>1: wanlab faster); outputs differ by rel L2 ${r.rel_l2_ours_vs_peer?.toExponential(2)}` : `no PyTorch peer: ${r.peer_reason}`);
  return 0;
}

/** `wanlab bench parallel`: src/bench-parallel.ts; JSON on stdout, a plotly page with --html. */
/** Writes `text` to `path` (checked by checkOutputFile) through a temporary file beside it. */
async function writeChecked(path: string, o: OutputFileOptions, text: string): Promise<void> {
  const tmp = tempBeside(path);
  try {
    await writeFile(tmp, text, { flag: "wx" });
    await commitFile(tmp, path, o);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function cmdBenchParallel(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "bench-parallel");
  if (v.help) return help("bench-parallel");
  // The page's target is checked before the benchmark runs, as generate checks its outputs.
  const htmlFile = { flag: "--html", overwrite: v.overwrite === true };
  const html = typeof v.html === "string" ? checkOutputFile(v.html, htmlFile) : undefined;
  const { benchParallel, benchParallelHtml } = await import("../bench-parallel.js");
  const progress = terminalProgress("bench parallel");
  const report = await benchParallel({
    model: v.model as string | undefined,
    workDir: v["work-dir"] as string | undefined,
    height: intOption("height", v.height as string | undefined, ...rangeOf("bench-parallel", "height")),
    width: intOption("width", v.width as string | undefined, ...rangeOf("bench-parallel", "width")),
    numFrames: intOption("num-frames", v["num-frames"] as string | undefined, ...rangeOf("bench-parallel", "num-frames")),
    steps: intOption("steps", v.steps as string | undefined, ...rangeOf("bench-parallel", "steps")),
    layouts: (v.layouts as string | undefined)?.split(",").map((x) => x.trim()),
    onLayout: (name, index, count) => progress.update(index / count, `${name} (${index + 1}/${count})`),
  });
  progress.done(`${report.layouts.length} layouts`);
  if (html) {
    await writeChecked(html, htmlFile, benchParallelHtml(report));
  }
  if (v.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const mib = (b: number) => (b / 2 ** 20).toFixed(2);
  const rows = [["layout", "bytes/step", "analytic", "collectives", "comm share", "peak MiB", "analytic MiB", "DiT params/rank", "time vs unsharded",
    "rel L2 vs 1"]];
  for (const l of report.layouts)
    rows.push([l.name, String(l.bytes_per_step[0]), String(l.bytes_per_step_analytic), String(l.collectives_per_step[0]),
      `${(100 * Math.max(...l.comm_fraction)).toFixed(0)} %`, l.peak_bytes.length ? mib(Math.max(...l.peak_bytes)) : "-", mib(l.peak_bytes_analytic),
      String(l.dit_params_per_rank), l.time_vs_unsharded === undefined ? "-" : `${l.time_vs_unsharded.toFixed(2)}x`, l.rel_l2_vs_1_rank.toExponential(2)]);
  console.log(table(rows, [1, 2, 3, 4, 5, 6, 7, 8, 9]));
  console.log(report.note);
  return 0;
}

/** `wanlab bench projection`: src/bench-projection.ts; every flag checked before the engine runs,
 * a table (JSON with --json) on stdout, the chart with --html. */
async function cmdBenchProjection(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "bench-projection");
  if (v.help) return help("bench-projection");
  const int = (name: string) => intOption(name, v[name] as string | undefined, ...rangeOf("bench-projection", name));
  const str = (name: string) => v[name] as string | undefined;
  const htmlFile = { flag: "--html", overwrite: v.overwrite === true };
  const html = typeof v.html === "string" ? checkOutputFile(v.html, htmlFile) : undefined;
  if (html && !existsSync(projectionScript)) throw new Error(`--html needs ${projectionScript}, the chart's builder, which this installation lacks`);
  const height = int("height"), width = int("width"), frames = int("frames");
  for (const [name, n] of [["height", height], ["width", width]] as const)
    if (n !== undefined && n % 16 !== 0) throw new UsageError(`--${name} must be a multiple of 16, got ${n}`);
  if (frames !== undefined && frames % 4 !== 1) throw new UsageError(`--frames must be 4k+1 (1, 5, 9, ..., 81), got ${frames}`);
  const list = (name: string) => str(name)?.split(",").map((x) => x.trim());
  const gpuChoices = choicesOf("bench-projection", "gpus");
  const gpus = list("gpus")?.map((g) => {
    if (!gpuChoices.includes(g)) throw new UsageError(`--gpus takes a list of ${gpuChoices.join(", ")}, got '${g}' in '${str("gpus")}'`);
    return Number(g);
  });
  const layouts = list("layouts");
  for (const l of layouts ?? [])
    if (!isProjectionLayout(l))
      throw new UsageError(`--layouts: '${l}' is not a layout (allowed: 1, uN, rN, uNrM, cfg, cfg-uN, cfg-rN, cfg-uNrM with N, M >= 2, optionally ending in -shard)`);
  for (const name of ["links", "measured"])
    if (str(name) !== undefined && !existsSync(str(name)!)) throw new UsageError(`--${name}: no file '${str(name)}'`);
  const linkChoices = choicesOf<Link>("bench-projection", "link");
  const cfgRange = rangeOf("bench-projection", "cfg-scale");
  const cfgScale = numberOption("cfg-scale", v["cfg-scale"], `[${cfgRange.join(", ")}]`);
  if (cfgScale !== undefined && !(cfgScale >= cfgRange[0] && cfgScale <= cfgRange[1]))
    throw new UsageError(`--cfg-scale must be in [${cfgRange.join(", ")}], got ${v["cfg-scale"]}`);
  const options: ProjectionOptions = {
    dims: choice("dims", str("dims"), choicesOf<Dims>("bench-projection", "dims")),
    heads: int("heads"), height, width, frames, steps: int("steps"), cfgScale, gpus, layouts,
    shardWeights: v["shard-weights"] === true,
    link: choice("link", str("link"), linkChoices),
    links: str("links"),
    interLink: choice("inter-link", str("inter-link"), linkChoices),
    gpusPerNode: int("gpus-per-node"), blocks: int("blocks"), warmup: int("warmup"), iters: int("iters"),
    device: deviceOption("device", v.device),
    dtype: choice("dtype", str("dtype"), choicesOf<Dtype>("bench-projection", "dtype")),
    threads: int("threads"), seed: int("seed"),
    measured: str("measured"),
  };
  const progress = terminalProgress("bench projection");
  const report = await benchProjection(options);
  progress.done(`${report.layouts.length} layouts`);
  if (html) {
    await writeChecked(html, htmlFile, await projectionHtml(report));
  }
  if (v.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const rows = [["layout", "GPUs", "s/step", `s for ${report.steps} steps`, "speed-up", "efficiency", "exposed comm s/step"]];
  for (const r of report.layouts)
    rows.push([r.layout, String(r.gpus), r.step_s.toFixed(3), r.total_s.toFixed(1), r.speedup.toFixed(2), r.efficiency.toFixed(2),
      r.exposed_comm_per_step_s.toFixed(4)]);
  console.log(table(rows, [1, 2, 3, 4, 5, 6]));
  for (const s of report.skipped) console.log(`skipped ${s.layout}: ${s.reason}`);
  for (const g of report.goals)
    console.log(`goal (${g.label}) ${g.goal}: ${g.value === undefined ? "-" : g.value.toFixed(3)}, ${g.applies ? (g.pass ? "pass" : "fail") : `does not apply: ${g.reason}`}`);
  console.log(`measured: ${report.method.measured}`);
  console.log(`modelled: ${report.method.modelled}`);
  return 0;
}

/** One `wanlab-engine bench-load` run (native/src/tools/load_bench.h). */
interface LoadRun {
  load_seconds: number;
  rss_after_load_bytes: number;
  rss_after_touch_bytes: number;
}

export async function cmdBench(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what === "parallel") return cmdBenchParallel(rest);
  if (what === "projection") return cmdBenchProjection(rest);
  if (what === "dit" || what === "vae" || what === "t5") return cmdBenchModel(what, rest);
  if (what === "--help" || what === "-h" || what === "help") return help("bench-model", "bench-load", "bench-parallel", "bench-projection");
  if (what !== "load") {
    const kinds = ["dit", "vae", "t5", "load", "parallel", "projection"];
    throw new UsageError(`bench needs a target: ${kinds.join(", ")} (got '${what ?? ""}')${what ? didYouMean(what, kinds) : ""}`);
  }
  const { values: v, positionals } = parseCommand(rest, "bench-load");
  if (v.help) return help("bench-load");
  const extra = v.touch ? ["--touch"] : [];
  const mmap = await engineJson<LoadRun>(["bench-load", positionals[0]!, ...extra]);
  const copy = await engineJson<LoadRun>(["bench-load", positionals[0]!, "--copy", ...extra]);
  const result = {
    bench: "load",
    dir: positionals[0],
    mmap,
    copy,
    load_time_ratio_copy_over_mmap: copy.load_seconds / mmap.load_seconds,
    rss_after_load_ratio_copy_over_mmap: copy.rss_after_load_bytes / mmap.rss_after_load_bytes,
  };
  console.log(JSON.stringify(result, null, 2));
  return 0;
}

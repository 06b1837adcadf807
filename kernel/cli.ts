// The `wanlab` command line. Each command parses its own options strictly (an unknown or
// malformed option is an error naming it) and returns an exit code: 0 ok, 1 failed, 2 usage.
import { spawn } from "node:child_process";
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { rm, writeFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { CancelledError, open, type GenerateResult, type OpenOptions, type ProgressEvent } from "./engine.js";
import { defaultModel, dimsPresets, inspect, layouts, makeTiny, type Dims, type Layout } from "./models.js";
import { ParamError, paramRanges, rangeText, resolveParams, type GenerateParams } from "./params.js";
import { checkInputVideoPath } from "./video/read.js";
import type { ServeOptions } from "./server/index.js";
import { writePngFrames } from "./video/ffmpeg.js";
import { checkDistinct, checkOutputDir, checkOutputFile, commitFile, kindOf, OutputError, tempBeside, type OutputFileOptions } from "./fs/safe-output.js";
import { paramSchemas } from "./server/schema.js";
import { benchModel, type BenchKind, type BenchSide } from "./bench.js";
import { formatBytes, table } from "./terminal/format.js";
import { formatInspect } from "./terminal/inspect.js";
import { terminalProgress } from "./terminal/progress.js";

export class UsageError extends Error {}

const usage = `usage: wanlab COMMAND [options]

commands:
  demo [--output out.mp4]       the main job: a short video from the embedded default (a tiny generated model);
                                each run replaces its output (a regular file) and its .json
  generate --model DIR --prompt TEXT [--negative-prompt TEXT] [--seed N] [--num-inference-steps N]
           [--cfg-scale X] [--sigma-shift X] [--height N] [--width N] [--num-frames N] [--tiled]
           [--tea-cache-l1-thresh X [--tea-cache-model-id ID]] [--input-video FILE [--denoising-strength X]]
           [--output out.mp4] [--save-tensors out.safetensors] [--fps N] [--crf N] [--frames-dir DIR] [--overwrite] [--server]
           [--devices LIST] [--ulysses N] [--ring N] [--cfg-parallel] [--rendezvous tcp://HOST:PORT --nnodes N --node-rank K]
           [--timeout S] [--log-dir DIR] [--log-level error|warn|info|debug]
           [--dtype f32|bf16|f16] [--t5-device DEV] [--t5-offload] [--vae-device DEV] [--persistent-params N] [--shard-weights] [--budget BYTES|auto]
                                text to video (DiffSynth-Studio's defaults; a random seed is printed;
                                outputs (the mp4, its .json, tensors, frames) are new paths or regular files, checked
                                before the model loads in folders that exist; existing files are kept unless --overwrite;
                                --devices defaults to auto: cuda:0 when a GPU is visible, else cpu;
                                --budget 24G: the DiT blocks that fit beside this video stay on the GPU, the rest stream in;
                                auto: the GPU's memory less 1.5 GB)
  inspect DIR [--json] [--devices LIST] [--ulysses N] [--ring N] [--cfg-parallel]
              [--height N] [--width N] [--num-frames N] [--budget BYTES|auto] [--persistent-params N] [--t5-device cpu|cuda] [--t5-offload] [--tiled] [--shard-weights]
                                layout, files, architecture, parameters, dtypes, memory per device
  make-tiny OUT [--layout official|sharded|diffusers|comfyui|comfyui-fp8] [--seed N] [--dims tiny|1.3B|14B]
                                write a deterministic random-weight Wan2.1 T2V model
  bench dit|vae|t5 [--json] [--dims tiny|1.3B|14B] [--layers N] [--frames N] [--height N] [--width N] [--no-peer] [--device cpu|cuda[:N]] [--dtype f32|bf16|f16]
                                time per forward, GFLOP/s, peak memory; PyTorch eager on DiffSynth's module as the peer
  bench load DIR [--touch]      load time and resident memory, mmap vs copy (JSON)
  bench parallel [--json] [--html FILE [--overwrite]] [--model DIR] [--height N] [--width N] [--num-frames N] [--steps N] [--layouts A,B]
                                every sequence-parallel layout on CPU ranks: bytes per step vs the analytic formula,
                                compute/comm split, peak memory per rank, parity vs 1 rank (timings are no speed-up claim)
  serve [--model DIR] [--devices LIST --ulysses N --ring N --cfg-parallel] [--rendezvous tcp://HOST:PORT --nnodes N --node-rank K] [--host 127.0.0.1] [--port 0] [--outputs DIR] [--allow-remote] [--grace S]
        [--timeout S] [--log-dir DIR] [--log-level error|warn|info|debug]
        [--dtype f32|bf16|f16] [--t5-device DEV] [--t5-offload] [--vae-device DEV] [--persistent-params N] [--shard-weights] [--budget BYTES|auto|none]
                                load a model once and serve a job queue over HTTP (prints 'listening on URL';
                                --budget plans for 480x832x81 and refuses jobs predicted to exceed it; without it
                                jobs predicted beyond the device's (or the host's) memory are refused;
                                --budget none: no budget and no such guard)
  kernel install [--user | --prefix P | --sys-prefix] [--name N] [--jupyter PATH | --no-jupyter] [--env K=V]...
  kernel uninstall [--name N] [--prefix P]   kernel list [--json]
                                the Jupyter kernel "wanlab (TypeScript)" (tslab)
  doctor [--json]               what this machine can run and where runs go (libtorch, CUDA devices checked by
                                running each path, ffmpeg, the Jupyter kernel); exit 1 on a problem
  help                          this text

Numbers are decimal (an integer is digits only: no 0x, 1e0, 64.0, +64 or spaces); each flag is given once
(--env may repeat). Exit status: 0 done, 1 failed, 2 a usage error (a flag, a value or an output target).
Run \`wanlab COMMAND --help\` for a command's options.`;

type Options = NonNullable<ParseArgsConfig["options"]>;

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

function parse(args: string[], options: Options, positionals: string[]): Parsed {
  let parsed: Parsed;
  let tokens: { kind: string; name?: string }[];
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true, tokens: true });
    parsed = r as unknown as Parsed;
    tokens = r.tokens ?? [];
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // A flag given twice would silently keep the last value: an error unless it is repeatable.
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== "option" || t.name === undefined || t.name === "help" || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given more than once; give it once`);
    seen.add(t.name);
  }
  if (!parsed.values.help && parsed.positionals.length !== positionals.length) {
    const got = parsed.positionals.length ? parsed.positionals.map((p) => `'${p}'`).join(" ") : "nothing";
    throw new UsageError(positionals.length ? `expected ${positionals.join(" ")}, got ${got}` : `takes no arguments, got ${got}`);
  }
  return parsed;
}

/** A decimal integer, nothing else: no sign but '-', no spaces, hex, exponent or fraction. */
const decimalInteger = /^-?\d+$/;
/** A decimal number: digits with an optional fraction and exponent; no '+', spaces, hex or Infinity. */
const decimalNumber = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** Parses an integer option; errors name the option, the value and the allowed range. */
export function intOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!decimalInteger.test(value)) throw new UsageError(`--${name} must be an integer, got '${value}' (a decimal integer from ${min} to ${max})`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return n;
}

/** The syntax of an integer option whose range a later check holds (resolveParams): the number,
 * or a usage error naming the option, the value and the range. */
export function intSyntax(name: string, value: string | boolean | undefined, range: readonly [number, number]): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !decimalInteger.test(value))
    throw new UsageError(`--${name} must be an integer, got '${value}' (a decimal integer from ${range[0]} to ${range[1]})`);
  return Number(value);
}

function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got '${value}'`);
  return value as T;
}

/** The ranks and their layout: --devices LIST --ulysses N --ring N --cfg-parallel (inspect, generate, serve). */
const layoutOptions: Options = {
  devices: { type: "string" },
  ulysses: { type: "string" },
  ring: { type: "string" },
  "cfg-parallel": { type: "boolean" },
};

/** --budget BYTES (24G, 7e9) or auto. */
function budgetOption(value: string | boolean | undefined, orNone = false): number | "auto" | undefined {
  if (value === "auto" || value === undefined) return value;
  try {
    return countOption("budget", value as string);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`--budget must be bytes like 24G, 7e9 or 7000000000, ${orNone ? "auto or none" : "or auto"}, got '${value}'`);
    throw e;
  }
}

/** --devices, --ulysses, --ring, --cfg-parallel as OpenOptions fields. */
function layoutOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel"> {
  return {
    devices: v.devices as string | undefined,
    ulysses: intOption("ulysses", v.ulysses as string | undefined, 1, 1024),
    ring: intOption("ring", v.ring as string | undefined, 1, 1024),
    cfgParallel: v["cfg-parallel"] === true,
  };
}

const inspectOptions: Options = {
  json: { type: "boolean" },
  ...layoutOptions,
  height: { type: "string" },
  width: { type: "string" },
  "num-frames": { type: "string" },
  budget: { type: "string" },
  "persistent-params": { type: "string" },
  "t5-device": { type: "string" },
  "t5-offload": { type: "boolean" },
  tiled: { type: "boolean" },
  "shard-weights": { type: "boolean" },
};

/** A count with an optional K/M/G suffix (powers of 10; "24G" = 24e9; "7e9" too). */
export function countOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([KMG]?)$/i.exec(value);
  if (!m) throw new UsageError(`--${name} must be a count like 24G, 7e9 or 7000000000, got '${value}'`);
  const scale = { "": 1, K: 1e3, M: 1e6, G: 1e9 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  const n = Math.round(Number(m[1]) * scale);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be a count like 24G, 7e9 or 7000000000, at most 2^53, got '${value}'`);
  return n;
}

async function cmdInspect(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, inspectOptions, ["DIR"]);
  if (v.help) return help("inspect DIR [--json] [--devices LIST] [--ulysses N] [--ring N] [--cfg-parallel] [--height N] [--width N] [--num-frames N] [--budget BYTES|auto] [--persistent-params N] [--t5-device cpu] [--t5-offload] [--tiled] [--shard-weights]");
  const report = await inspect(positionals[0]!, {
    ...layoutOpenOptions(v),
    height: intOption("height", v.height as string | undefined, 16, 8192),
    width: intOption("width", v.width as string | undefined, 16, 8192),
    numFrames: intOption("num-frames", v["num-frames"] as string | undefined, 1, 4097),
    budget: budgetOption(v.budget),
    persistentParams: countOption("persistent-params", v["persistent-params"] as string | undefined),
    t5Device: choice("t5-device", v["t5-device"] as string | undefined, ["cpu", "cuda"] as const),
    t5Offload: v["t5-offload"] === true,
    tiled: v.tiled === true,
    shardWeights: v["shard-weights"] === true,
  });
  console.log(v.json ? JSON.stringify(report, null, 2) : formatInspect(report));
  // What generate would refuse (a tokenizer.json missing or bad) is a problem here too.
  for (const p of report.problems) console.error(`wanlab inspect: ${p}`);
  return report.problems.length ? 1 : 0;
}

async function cmdMakeTiny(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, { layout: { type: "string" }, seed: { type: "string" }, dims: { type: "string" } }, ["OUT"]);
  if (v.help) return help("make-tiny OUT [--layout official|sharded|diffusers|comfyui|comfyui-fp8] [--seed N] [--dims tiny|1.3B|14B]");
  const layout = choice<Layout>("layout", v.layout as string | undefined, layouts) ?? "official";
  const dims = choice<Dims>("dims", v.dims as string | undefined, dimsPresets) ?? "tiny";
  const seed = intOption("seed", v.seed as string | undefined, 0, Number.MAX_SAFE_INTEGER) ?? 0;
  // OUT is a model folder: a device node, FIFO or file there is named (and left alone) at once.
  const st = lstatSync(positionals[0]!, { throwIfNoEntry: false });
  if (st && !st.isDirectory() && !(st.isSymbolicLink() && statSync(positionals[0]!, { throwIfNoEntry: false })?.isDirectory()))
    throw new OutputError("OUT", `OUT ${resolvePath(positionals[0]!)} is ${kindOf(st)}, not a folder; make-tiny writes a model folder there`);
  const progress = terminalProgress(`make-tiny ${layout}`);
  await makeTiny(positionals[0]!, { layout, dims, seed, onProgress: (file, f) => progress.update(f, file) });
  progress.done(`wrote ${positionals[0]}`);
  return 0;
}

/** Path of the C++ CLI; load measurements run it in fresh processes so RSS figures are clean. */
export const enginePath = fileURLToPath(new URL("../../native/build/wanlab-engine", import.meta.url));

function runEngine(args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (!existsSync(enginePath)) return reject(new Error(`${enginePath} is missing; run \`npm run build\``));
    const child = spawn(enginePath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err.trim() || `wanlab-engine exited with ${code}`))));
  });
}

const benchModelOptions: Options = {
  json: { type: "boolean" },
  device: { type: "string" },
  dtype: { type: "string" },
  dims: { type: "string" },
  layers: { type: "string" },
  frames: { type: "string" },
  height: { type: "string" },
  width: { type: "string" },
  tokens: { type: "string" },
  iters: { type: "string" },
  warmup: { type: "string" },
  threads: { type: "string" },
  diffsynth: { type: "string" },
  python: { type: "string" },
  "no-peer": { type: "boolean" },
};

/** `wanlab bench dit|vae|t5`: ours against PyTorch eager on DiffSynth's module, same weights and input. */
async function cmdBenchModel(kind: BenchKind, args: string[]): Promise<number> {
  const { values: v } = parse(args, benchModelOptions, []);
  if (v.help) return help(`bench ${kind} [--json] [--dims tiny|1.3B|14B] [--layers N] [--frames N --height N --width N] [--tokens N] [--iters N] [--warmup N] [--threads N] [--diffsynth DIR] [--python PATH] [--no-peer] [--device cpu|cuda[:N]] [--dtype f32|bf16|f16]`);
  const int = (name: string, min: number, max: number) => intOption(name, v[name] as string | undefined, min, max);
  const report = await benchModel(kind, {
    dims: choice("dims", v.dims as string | undefined, dimsPresets),
    layers: int("layers", 1, 100),
    frames: int("frames", 1, 1001),
    height: int("height", 8, 8192),
    width: int("width", 8, 8192),
    tokens: int("tokens", 1, 4096),
    iters: int("iters", 1, 1000),
    warmup: int("warmup", 0, 1000),
    threads: int("threads", 1, 1024),
    diffsynth: v.diffsynth as string | undefined,
    python: v.python as string | undefined,
    peer: v["no-peer"] !== true,
    device: deviceOption("device", v.device),
    dtype: choice("dtype", v.dtype as string | undefined, computeDtypes),
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

/** `wanlab bench parallel`: kernel/bench-parallel.ts; JSON on stdout, a plotly page with --html. */
async function cmdBenchParallel(args: string[]): Promise<number> {
  const { values: v } = parse(args, { json: { type: "boolean" }, html: { type: "string" }, model: { type: "string" }, height: { type: "string" },
    width: { type: "string" }, "num-frames": { type: "string" }, steps: { type: "string" }, layouts: { type: "string" }, "work-dir": { type: "string" },
    overwrite: { type: "boolean" } }, []);
  if (v.help) return help("bench parallel [--json] [--html FILE [--overwrite]] [--model DIR] [--height N] [--width N] [--num-frames N] [--steps N] [--layouts A,B] [--work-dir DIR]");
  // The page's target is checked before the benchmark runs, as generate checks its outputs.
  const htmlFile = { flag: "--html", overwrite: v.overwrite === true };
  const html = typeof v.html === "string" ? checkOutputFile(v.html, htmlFile) : undefined;
  const { benchParallel, benchParallelHtml } = await import("./bench-parallel.js");
  const progress = terminalProgress("bench parallel");
  const report = await benchParallel({
    model: v.model as string | undefined,
    workDir: v["work-dir"] as string | undefined,
    height: intOption("height", v.height as string | undefined, 16, 4096),
    width: intOption("width", v.width as string | undefined, 16, 4096),
    numFrames: intOption("num-frames", v["num-frames"] as string | undefined, 1, 1001),
    steps: intOption("steps", v.steps as string | undefined, 1, 1000),
    layouts: (v.layouts as string | undefined)?.split(",").map((x) => x.trim()),
    onLayout: (name, index, count) => progress.update(index / count, `${name} (${index + 1}/${count})`),
  });
  progress.done(`${report.layouts.length} layouts`);
  if (html) {
    const tmp = tempBeside(html);
    try {
      await writeFile(tmp, benchParallelHtml(report), { flag: "wx" });
      await commitFile(tmp, html, htmlFile);
    } finally {
      await rm(tmp, { force: true });
    }
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

async function cmdBench(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what === "parallel") return cmdBenchParallel(rest);
  if (what === "dit" || what === "vae" || what === "t5") return cmdBenchModel(what, rest);
  if (what !== "load") throw new UsageError(`bench needs a target: dit, vae, t5, load or parallel (got '${what ?? ""}')`);
  const { values: v, positionals } = parse(rest, { touch: { type: "boolean" } }, ["DIR"]);
  if (v.help) return help("bench load DIR [--touch]");
  const extra = v.touch ? ["--touch"] : [];
  const mmap = (await runEngine(["bench-load", positionals[0]!, ...extra])) as { load_seconds: number; rss_after_load_bytes: number; rss_after_touch_bytes: number };
  const copy = (await runEngine(["bench-load", positionals[0]!, "--copy", ...extra])) as { load_seconds: number; rss_after_load_bytes: number; rss_after_touch_bytes: number };
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

/** Device-group options shared by generate and serve: the ranks and their layout, several nodes,
 * the collective timeout and per-rank logs. */
const groupOptions: Options = {
  ...layoutOptions,
  rendezvous: { type: "string" },
  nnodes: { type: "string" },
  "node-rank": { type: "string" },
  timeout: { type: "string" },
  "log-dir": { type: "string" },
  "log-level": { type: "string" },
};

const logLevels = ["error", "warn", "info", "debug"] as const;

/** Compute placement shared by generate and serve (native ComputeOptions). */
const computeOptions: Options = {
  dtype: { type: "string" },
  "t5-device": { type: "string" },
  "t5-offload": { type: "boolean" },
  "vae-device": { type: "string" },
  "persistent-params": { type: "string" },
  "shard-weights": { type: "boolean" },
  budget: { type: "string" },
};

const computeDtypes = ["f32", "bf16", "f16"] as const;

function deviceOption(name: string, value: string | boolean | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^(cpu|cuda|cuda:\d{1,3})$/.test(value)) throw new UsageError(`--${name} must be cpu, cuda or cuda:N, got '${value}'`);
  return value;
}

/** --dtype f32|bf16|f16, --t5-device DEV, --t5-offload, --vae-device DEV, --persistent-params N,
 * --shard-weights, --budget BYTES as OpenOptions fields. */
export function computeOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "dtype" | "t5Device" | "t5Offload" | "vaeDevice" | "persistentParams" | "shardWeights" | "budget"> {
  return {
    budget: budgetOption(v.budget),
    dtype: choice("dtype", v.dtype as string | undefined, computeDtypes),
    t5Device: deviceOption("t5-device", v["t5-device"]),
    t5Offload: v["t5-offload"] === true ? true : undefined,
    vaeDevice: deviceOption("vae-device", v["vae-device"]),
    persistentParams: countOption("persistent-params", v["persistent-params"] as string | undefined),
    shardWeights: v["shard-weights"] === true ? true : undefined,
  };
}

/** --devices, --ulysses, --ring, --cfg-parallel, --rendezvous, --nnodes, --node-rank, --timeout S
 * (seconds, > 0), --log-dir DIR, --log-level LEVEL as OpenOptions fields. */
export function groupOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel"
  | "rendezvous" | "nnodes" | "nodeRank" | "timeoutS" | "logDir" | "logLevel"> {
  const timeoutS = numberOption("timeout", v.timeout, "(0, 86400]");
  if (timeoutS !== undefined && !(timeoutS > 0 && timeoutS <= 86400)) throw new UsageError(`--timeout must be seconds in (0, 86400], got ${v.timeout}`);
  return {
    ...layoutOpenOptions(v),
    rendezvous: v.rendezvous as string | undefined,
    nnodes: intOption("nnodes", v.nnodes as string | undefined, 1, 1024),
    nodeRank: intOption("node-rank", v["node-rank"] as string | undefined, 0, 1023),
    timeoutS,
    logDir: v["log-dir"] as string | undefined,
    logLevel: choice("log-level", v["log-level"] as string | undefined, logLevels),
  };
}

const generateOptions: Options = {
  model: { type: "string" },
  prompt: { type: "string" },
  "negative-prompt": { type: "string" },
  seed: { type: "string" },
  "num-inference-steps": { type: "string" },
  "cfg-scale": { type: "string" },
  "sigma-shift": { type: "string" },
  height: { type: "string" },
  width: { type: "string" },
  "num-frames": { type: "string" },
  tiled: { type: "boolean" },
  "tea-cache-l1-thresh": { type: "string" },
  "tea-cache-model-id": { type: "string" },
  "input-video": { type: "string" },
  "denoising-strength": { type: "string" },
  output: { type: "string" },
  "save-tensors": { type: "string" },
  fps: { type: "string" },
  crf: { type: "string" },
  "frames-dir": { type: "string" },
  overwrite: { type: "boolean" },
  server: { type: "boolean" },
  ...groupOptions,
  ...computeOptions,
};

/** A decimal number option (finite); errors name the option, the value and, given, the range
 * (which a later check holds). */
export function numberOption(name: string, value: string | boolean | undefined, range?: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !decimalNumber.test(value) || !Number.isFinite(n))
    throw new UsageError(`--${name} must be a number, got '${value}' (a decimal number${range ? ` in ${range}` : ""})`);
  return n;
}

function stageLabel(e: ProgressEvent): string {
  return e.stage === "denoise" ? `step ${e.step}/${e.total}` : e.stage === "decode" ? `VAE ${e.step}/${e.total}` : "text encoder";
}

interface RunOptions {
  model: string;
  params: GenerateParams;
  output: string;
  saveTensors?: string;
  fps?: number;
  crf?: number;
  framesDir?: string;
  /** Existing regular files among the outputs may be replaced (--overwrite; demo: always). */
  overwrite?: boolean;
  /** Run on the \`wanlab serve\` found through server.json instead of loading the model here. */
  server?: boolean;
  /** Sequence-parallel device group (local engine only). */
  parallel?: Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel" | "rendezvous" | "nnodes" | "nodeRank" | "timeoutS" | "logDir" | "logLevel"
    | "dtype" | "t5Device" | "t5Offload" | "vaeDevice" | "persistentParams" | "shardWeights" | "budget" | "budgetVideo">;
}

/** Where each output goes, checked before the model loads: the real paths, and how to write them. */
interface OutputPlan {
  video: string;
  sidecar: string;
  tensors?: string;
  framesDir?: string;
}

/** Every output target (video, its .json, tensors, frames) checked before any compute: a new
 * path or a regular file (kept unless --overwrite) in a folder that exists and can be written;
 * anything else is refused naming the flag and the path. */
function planOutputs(o: RunOptions, numFrames: number): OutputPlan {
  const file = (flag: string): OutputFileOptions => ({ flag, overwrite: o.overwrite === true });
  const video = checkOutputFile(o.output, file("--output"));
  const sidecar = checkOutputFile(`${resolvePath(o.output)}.json`, file("--output (its .json)"));
  const tensors = o.saveTensors === undefined ? undefined : checkOutputFile(o.saveTensors, file("--save-tensors"));
  const framesDir = o.framesDir === undefined ? undefined
    : checkOutputDir(o.framesDir, { ...file("--frames-dir"), files: Array.from({ length: numFrames }, (_, f) => `${f}.png`) });
  checkDistinct([{ flag: "--output", path: video }, { flag: "--output (its .json)", path: sidecar },
    ...(tensors ? [{ flag: "--save-tensors", path: tensors }] : [])]);
  return { video, sidecar, tensors, framesDir };
}

/** Loads, generates with a progress bar, writes the mp4 and its metadata; Ctrl-C cancels at the next step. */
async function runGenerate(o: RunOptions): Promise<number> {
  // What can be checked without the model is checked before loading it (a bad value or output
  // target costs no load). Nodes 1.. write nothing.
  const checked = resolveParams(o.params);
  if (checked.inputVideo && !o.server) checkInputVideoPath(checked.inputVideo);
  const writes = !o.parallel?.nodeRank;
  const plan = writes ? planOutputs(o, checked.numFrames) : undefined;
  const loading = terminalProgress("loading");
  loading.update(0, o.model);
  const lab = o.server ? await (await import("./client/index.js")).connectFor(o.model) : await open({ model: o.model, ...o.parallel });
  if (o.server) o.model = lab.info.dir;
  loading.done(`${lab.info.layout} model ${o.model}`);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  const bar = terminalProgress("generate");
  // The tensors are written aside by the engine, then put in place as the other outputs are.
  const tensorsTmp = plan?.tensors ? tempBeside(plan.tensors) : undefined;
  let result: GenerateResult;
  try {
    result = await lab.generate(o.params, {
      signal: controller.signal,
      saveTensors: tensorsTmp,
      onProgress: (e) => {
        // one bar over the whole job: encode 0-2%, denoise 2-90%, decode 90-100%
        const base = e.stage === "encode" ? 0 : e.stage === "denoise" ? 0.02 : 0.9;
        const span = e.stage === "encode" ? 0.02 : e.stage === "denoise" ? 0.88 : 0.1;
        bar.update(base + (span * e.step) / Math.max(1, e.total), stageLabel(e));
      },
    });
  } catch (e) {
    if (tensorsTmp) await rm(tensorsTmp, { force: true });
    if (e instanceof CancelledError) {
      bar.done(e.message);
      await lab.close();
      return 130;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
  bar.done(`seed ${result.params.seed}`);
  if (!plan) {
    // Every node ran the same request; node 0 writes the outputs.
    await lab.close();
    console.error(`node ${o.parallel!.nodeRank} of ${o.parallel!.nnodes}: done (node 0 writes the outputs)`);
    return 0;
  }
  const out = resolvePath(o.output);
  const overwrite = o.overwrite === true;
  try {
    if (tensorsTmp) await commitFile(tensorsTmp, plan.tensors!, { flag: "--save-tensors", overwrite });
    const videoTmp = tempBeside(plan.video);
    try {
      await result.video.save(videoTmp, { fps: o.fps, crf: o.crf });
      await commitFile(videoTmp, plan.video, { flag: "--output", overwrite });
    } finally {
      await rm(videoTmp, { force: true });
    }
    // Everything needed to make the same video again, beside it (written aside, then put in place).
    const meta = {
      producer: "wanlab",
      model: resolvePath(o.model),
      params: { ...result.params, seed: result.params.seed.toString() },
      fps: o.fps ?? result.video.fps,
      frames: result.video.numFrames,
      timings: result.timings,
      saveTensors: o.saveTensors ? resolvePath(o.saveTensors) : undefined,
    };
    const metaTmp = tempBeside(plan.sidecar);
    try {
      await writeFile(metaTmp, JSON.stringify(meta, null, 2) + "\n", { flag: "wx" });
      await commitFile(metaTmp, plan.sidecar, { flag: "--output (its .json)", overwrite });
    } finally {
      await rm(metaTmp, { force: true });
    }
    const v = result.video;
    if (plan.framesDir)
      await writePngFrames(v.frames, { width: v.width, height: v.height, frames: v.numFrames, dir: plan.framesDir, overwrite, flag: "--frames-dir" });
  } finally {
    if (tensorsTmp) await rm(tensorsTmp, { force: true });
    await lab.close();
  }
  console.log(out);
  console.error(`wrote ${out} (${result.video.numFrames} frames, ${result.video.width}×${result.video.height}, seed ${result.params.seed})` +
    (o.saveTensors ? `, tensors ${resolvePath(o.saveTensors)}` : "") + (o.framesDir ? `, frames in ${resolvePath(o.framesDir)}` : ""));
  return 0;
}

async function cmdGenerate(args: string[]): Promise<number> {
  const { values: v } = parse(args, generateOptions, []);
  if (v.help) return help(usageOf("generate"));
  if (typeof v.model !== "string" && !v.server) throw new UsageError("--model DIR is required (or --server)");
  if (typeof v.prompt !== "string") throw new UsageError("--prompt TEXT is required");
  if (v.server && (v.devices !== undefined || v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--devices, --ulysses, --ring and --cfg-parallel apply to a local engine, not --server");
  for (const k of Object.keys(computeOptions))
    if (v.server && v[k] !== undefined) throw new UsageError(`--${k} applies to a local engine (or to wanlab serve), not --server`);
  // Numbers are decimal (an integer flag takes digits only); the ranges are resolveParams' checks.
  if (typeof v.seed === "string" && !/^\d+$/.test(v.seed))
    throw new UsageError(`--seed must be an integer, got '${v.seed}' (a decimal integer from 0 to 18446744073709551615)`);
  const params: GenerateParams = {
    prompt: v.prompt,
    negativePrompt: v["negative-prompt"] as string | undefined,
    seed: v.seed as string | undefined,
    numInferenceSteps: intSyntax("num-inference-steps", v["num-inference-steps"], paramRanges.numInferenceSteps),
    cfgScale: numberOption("cfg-scale", v["cfg-scale"], rangeText("cfgScale")),
    sigmaShift: numberOption("sigma-shift", v["sigma-shift"], rangeText("sigmaShift")),
    height: intSyntax("height", v.height, paramRanges.height),
    width: intSyntax("width", v.width, paramRanges.width),
    numFrames: intSyntax("num-frames", v["num-frames"], paramRanges.numFrames),
    tiled: v.tiled === true,
    teaCacheL1Thresh: numberOption("tea-cache-l1-thresh", v["tea-cache-l1-thresh"], rangeText("teaCacheL1Thresh")),
    teaCacheModelId: v["tea-cache-model-id"] as string | undefined,
    // An absolute path: a server (--server) reads it on its own, from another working directory.
    inputVideo: typeof v["input-video"] === "string" ? resolvePath(v["input-video"]) : undefined,
    denoisingStrength: numberOption("denoising-strength", v["denoising-strength"], rangeText("denoisingStrength")),
  };
  return runGenerate({
    model: (v.model as string | undefined) ?? "",
    server: v.server === true,
    params,
    output: (v.output as string | undefined) ?? "out.mp4",
    saveTensors: v["save-tensors"] as string | undefined,
    fps: intOption("fps", v.fps as string | undefined, 1, 240),
    crf: intOption("crf", v.crf as string | undefined, 0, 51),
    framesDir: v["frames-dir"] as string | undefined,
    overwrite: v.overwrite === true,
    // A budget is planned for the one video this command makes.
    parallel: { ...groupOpenOptions(v), ...computeOpenOptions(v),
      budgetVideo: { height: params.height, width: params.width, numFrames: params.numFrames, tiled: params.tiled } },
  });
}

async function cmdServe(args: string[]): Promise<number> {
  const o: Options = { model: { type: "string" }, host: { type: "string" }, port: { type: "string" }, outputs: { type: "string" },
    "allow-remote": { type: "boolean" }, grace: { type: "string" }, ...groupOptions, ...computeOptions };
  const { values: v } = parse(args, o, []);
  if (v.help) return help(usageOf("serve"));
  if (v.devices === undefined && (v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--ulysses, --ring and --cfg-parallel need --devices listing the ranks (e.g. --devices cpu:0-3)");
  // --budget none: no engine budget and no host guard (the server's default refuses jobs
  // predicted beyond the device's or the host's memory).
  const none = v.budget === "none";
  budgetOption(none ? undefined : v.budget, true);
  const options: ServeOptions & { guard?: boolean } = {
    model: v.model as string | undefined,
    host: v.host as string | undefined,
    port: intOption("port", v.port as string | undefined, 0, 65535),
    outputs: v.outputs as string | undefined,
    allowRemote: v["allow-remote"] === true,
    graceMs: (intOption("grace", v.grace as string | undefined, 0, 86400) ?? 30) * 1000,
    parallel: { ...groupOpenOptions(v), ...computeOpenOptions(none ? { ...v, budget: undefined } : v) },
    ...(none ? { guard: false } : {}),
  };
  const { runServer } = await import("./server/index.js"); // fastify loads only for this command
  return runServer(options);
}

async function cmdDemo(args: string[]): Promise<number> {
  const { values: v } = parse(args, { output: { type: "string" } }, []);
  if (v.help) return help("demo [--output out.mp4]");
  const progress = terminalProgress("embedded default model");
  const dir = await defaultModel((file, f) => progress.update(f, file));
  progress.done(`ready at ${dir}`);
  return runGenerate({
    model: dir,
    params: { prompt: "A cat walks on the street at night, cinematic, detailed.", negativePrompt: "blurry, low quality, static", seed: 42, numInferenceSteps: 10, height: 128, width: 128, numFrames: 9 },
    output: (v.output as string | undefined) ?? "wanlab-demo.mp4",
    // The demo's video is its own: each run replaces it (a regular file only), so \`npm start\` runs again.
    overwrite: true,
  });
}

/** A command's block of the usage text (its option lines and what it does), aligned under
 * help()'s "usage: wanlab " prefix. */
function usageOf(command: string): string {
  const lines = usage.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`  ${command} `));
  let end = start + 1;
  while (end < lines.length && /^ {3,}/.test(lines[end]!)) end++;
  const pad = " ".repeat("usage: wanlab ".length - 2);
  return lines.slice(start, end).map((l, i) => (i === 0 ? l.slice(2) : pad + l)).join("\n");
}

function help(line: string): number {
  console.log(`usage: wanlab ${line}`);
  return 0;
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function cmdKernel(args: string[]): Promise<number> {
  const { installKernel, listKernels, uninstallKernel } = await import("./jupyter/kernelspec.js");
  const what = args[0]?.startsWith("-") ? undefined : args[0];
  const rest = what === undefined ? args : args.slice(1);
  const v = parse(rest, { user: { type: "boolean" }, prefix: { type: "string" }, "sys-prefix": { type: "boolean" }, name: { type: "string" },
    jupyter: { type: "string" }, "no-jupyter": { type: "boolean" }, env: { type: "string", multiple: true }, json: { type: "boolean" } }, []).values;
  if (v.help || !what) return help(usage.split("\n").filter((l) => l.trimStart().startsWith("kernel")).map((l) => l.trim()).join("\n       wanlab "));
  const scopes = [v.user && "--user", v.prefix !== undefined && "--prefix", v["sys-prefix"] && "--sys-prefix"].filter(Boolean);
  if (scopes.length > 1) throw new UsageError(`${scopes.join(" and ")} exclude each other`);
  const scope = v.user ? { kind: "user" as const } : v.prefix !== undefined ? { kind: "prefix" as const, prefix: resolvePath(v.prefix as string) } : v["sys-prefix"] ? { kind: "sys-prefix" as const } : undefined;
  const jupyter = v["no-jupyter"] ? (false as const) : (v.jupyter as string | undefined);
  if (what === "install") {
    const env: Record<string, string> = {};
    for (const kv of (v.env as unknown as string[] | undefined) ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(kv);
      if (!m) throw new UsageError(`--env must be NAME=VALUE, got '${kv}'`);
      env[m[1]!] = m[2]!;
    }
    const k = await installKernel({ scope, name: v.name as string | undefined, jupyter, env });
    console.log(`installed kernel '${k.name}' ("${k.spec.display_name}") in ${k.dir}`);
    return 0;
  }
  if (what === "uninstall") {
    const removed = await uninstallKernel({ name: v.name as string | undefined, jupyter, scope });
    if (!removed.length) throw new Error(`no wanlab kernel named '${(v.name as string | undefined) ?? "wanlab"}' is installed`);
    for (const d of removed) console.log(`removed ${d}`);
    return 0;
  }
  if (what === "list") {
    const ks = listKernels({ jupyter, scope });
    if (v.json) console.log(JSON.stringify(ks, null, 2));
    else for (const k of ks) console.log(`${k.name}\t${k.dir}\t${k.spec.argv[0]} ${k.spec.argv[1]}`);
    return 0;
  }
  throw new UsageError(`kernel needs install, uninstall or list (got '${what}')`);
}

/** `wanlab doctor [--json]`: kernel/doctor.ts; exit 1 when a problem is found. */
async function cmdDoctor(args: string[]): Promise<number> {
  const { values: v } = parse(args, { json: { type: "boolean" } }, []);
  if (v.help) return help("doctor [--json]");
  const { doctor, doctorText } = await import("./doctor.js");
  const r = await doctor();
  console.log(v.json ? JSON.stringify(r, null, 2) : doctorText(r));
  return r.ok ? 0 : 1;
}

const commands: Record<string, (args: string[]) => Promise<number>> = {
  doctor: cmdDoctor,
  kernel: cmdKernel,
  demo: cmdDemo,
  generate: cmdGenerate,
  inspect: cmdInspect,
  "make-tiny": cmdMakeTiny,
  bench: cmdBench,
  serve: cmdServe,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(usage);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version") {
    console.log(version());
    return 0;
  }
  const run = commands[cmd];
  if (!run) {
    console.error(`wanlab: unknown command '${cmd}'\n\n${usage}`);
    return 2;
  }
  try {
    return await run(args);
  } catch (e) {
    if (e instanceof ParamError) {
      // Parameter names become their flags: the field, and any other camelCase one the message names.
      const field = e.field;
      const flag = (name: string) => "--" + name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
      const named = Object.keys(paramSchemas).filter((k) => /[A-Z]/.test(k) && k !== field);
      const text = e.message.replace(field, flag(field)).replace(new RegExp(`\\b(${named.join("|")})\\b`, "g"), flag);
      console.error(`wanlab ${cmd}: ${text}`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof OutputError) {
      console.error(`wanlab ${cmd}: ${e.message}`);
      return 2;
    }
    console.error(`wanlab ${cmd}: ${(e as Error).message}`);
    return 1;
  }
}

// The `wanlab` command line. Each command parses its own options strictly (an unknown or
// malformed option is an error naming it) and returns an exit code: 0 ok, 1 failed, 2 usage.
import { spawn } from "node:child_process";
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { rm, writeFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { CancelledError, open, type GenerateResult, type OpenOptions, type ProgressEvent } from "./engine.js";
import { defaultModel, inspect, makeTiny, type Dims, type Layout } from "./models.js";
import { ParamError, paramRanges, rangeText, resolveParams, type GenerateParams } from "./params.js";
import { checkInputVideoPath } from "./video/read.js";
import type { ServeOptions } from "./server/index.js";
import { writePngFrames } from "./video/ffmpeg.js";
import { checkDistinct, checkOutputDir, checkOutputFile, commitFile, kindOf, OutputError, tempBeside, type OutputFileOptions } from "./fs/safe-output.js";
import { paramSchemas } from "./server/schema.js";
import { choicesOf, commandTable, computeFlags, rangeOf, type Command } from "./options/table.js";
import { commandHelp, parseOptionsOf, usageText, type ParseOptions } from "./options/usage.js";
import { benchModel, type BenchKind, type BenchSide } from "./bench.js";
import { formatBytes, table } from "./terminal/format.js";
import { formatInspect } from "./terminal/inspect.js";
import { terminalProgress } from "./terminal/progress.js";

export class UsageError extends Error {}

/** `wanlab help`: made from the option table (src/options/table.ts), as each command's --help is. */
const usage = usageText();

type Options = ParseOptions;

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses a command's flags (the option table's rows for it; `kernel` parses its subcommands' at once). */
function parseCommand(args: string[], ...cmds: Command[]): Parsed {
  return parse(args, parseOptionsOf(...cmds), commandTable[cmds[0]!].positionals);
}

function parse(args: string[], options: Options, positionals: readonly string[]): Parsed {
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
    ulysses: intOption("ulysses", v.ulysses as string | undefined, ...rangeOf("generate", "ulysses")),
    ring: intOption("ring", v.ring as string | undefined, ...rangeOf("generate", "ring")),
    cfgParallel: v["cfg-parallel"] === true,
  };
}

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
  const { values: v, positionals } = parseCommand(args, "inspect");
  if (v.help) return help("inspect");
  const report = await inspect(positionals[0]!, {
    ...layoutOpenOptions(v),
    height: intOption("height", v.height as string | undefined, ...rangeOf("inspect", "height")),
    width: intOption("width", v.width as string | undefined, ...rangeOf("inspect", "width")),
    numFrames: intOption("num-frames", v["num-frames"] as string | undefined, ...rangeOf("inspect", "num-frames")),
    budget: budgetOption(v.budget),
    persistentParams: countOption("persistent-params", v["persistent-params"] as string | undefined),
    t5Device: choice("t5-device", v["t5-device"] as string | undefined, choicesOf("inspect", "t5-device")),
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
  const { values: v, positionals } = parseCommand(args, "make-tiny");
  if (v.help) return help("make-tiny");
  const layout = choice("layout", v.layout as string | undefined, choicesOf<Layout>("make-tiny", "layout")) ?? "official";
  const dims = choice("dims", v.dims as string | undefined, choicesOf<Dims>("make-tiny", "dims")) ?? "tiny";
  const seed = intOption("seed", v.seed as string | undefined, ...rangeOf("make-tiny", "seed")) ?? 0;
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
async function cmdBenchParallel(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "bench-parallel");
  if (v.help) return help("bench-parallel");
  // The page's target is checked before the benchmark runs, as generate checks its outputs.
  const htmlFile = { flag: "--html", overwrite: v.overwrite === true };
  const html = typeof v.html === "string" ? checkOutputFile(v.html, htmlFile) : undefined;
  const { benchParallel, benchParallelHtml } = await import("./bench-parallel.js");
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
  const { values: v, positionals } = parseCommand(rest, "bench-load");
  if (v.help) return help("bench-load");
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


type Dtype = NonNullable<OpenOptions["dtype"]>;

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
    dtype: choice("dtype", v.dtype as string | undefined, choicesOf<Dtype>("generate", "dtype")),
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
    nnodes: intOption("nnodes", v.nnodes as string | undefined, ...rangeOf("generate", "nnodes")),
    nodeRank: intOption("node-rank", v["node-rank"] as string | undefined, ...rangeOf("generate", "node-rank")),
    timeoutS,
    logDir: v["log-dir"] as string | undefined,
    logLevel: choice("log-level", v["log-level"] as string | undefined, choicesOf<NonNullable<OpenOptions["logLevel"]>>("generate", "log-level")),
  };
}

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
  const { values: v } = parseCommand(args, "generate");
  if (v.help) return help("generate");
  if (typeof v.model !== "string" && !v.server) throw new UsageError("--model DIR is required (or --server)");
  if (typeof v.prompt !== "string") throw new UsageError("--prompt TEXT is required");
  if (v.server && (v.devices !== undefined || v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--devices, --ulysses, --ring and --cfg-parallel apply to a local engine, not --server");
  for (const k of computeFlags)
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
    fps: intOption("fps", v.fps as string | undefined, ...rangeOf("generate", "fps")),
    crf: intOption("crf", v.crf as string | undefined, ...rangeOf("generate", "crf")),
    framesDir: v["frames-dir"] as string | undefined,
    overwrite: v.overwrite === true,
    // A budget is planned for the one video this command makes.
    parallel: { ...groupOpenOptions(v), ...computeOpenOptions(v),
      budgetVideo: { height: params.height, width: params.width, numFrames: params.numFrames, tiled: params.tiled } },
  });
}

async function cmdServe(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "serve");
  if (v.help) return help("serve");
  if (v.devices === undefined && (v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--ulysses, --ring and --cfg-parallel need --devices listing the ranks (e.g. --devices cpu:0-3)");
  // --budget none: no engine budget and no host guard (the server's default refuses jobs
  // predicted beyond the device's or the host's memory).
  const none = v.budget === "none";
  budgetOption(none ? undefined : v.budget, true);
  const options: ServeOptions & { guard?: boolean } = {
    model: v.model as string | undefined,
    host: v.host as string | undefined,
    port: intOption("port", v.port as string | undefined, ...rangeOf("serve", "port")),
    outputs: v.outputs as string | undefined,
    allowRemote: v["allow-remote"] === true,
    graceMs: (intOption("grace", v.grace as string | undefined, ...rangeOf("serve", "grace")) ?? 30) * 1000,
    parallel: { ...groupOpenOptions(v), ...computeOpenOptions(none ? { ...v, budget: undefined } : v) },
    ...(none ? { guard: false } : {}),
  };
  const { runServer } = await import("./server/index.js"); // fastify loads only for this command
  return runServer(options);
}

async function cmdDemo(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "demo");
  if (v.help) return help("demo");
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

/** `wanlab COMMAND --help`: the command's synopsis, what it does and each flag, from the option table. */
function help(...cmds: Command[]): number {
  console.log(commandHelp(...cmds));
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
  const v = parseCommand(rest, "kernel-install", "kernel-uninstall", "kernel-list").values;
  if (v.help || !what) return help("kernel-install", "kernel-uninstall", "kernel-list");
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

/** `wanlab doctor [--json]`: src/doctor.ts; exit 1 when a problem is found. */
async function cmdDoctor(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "doctor");
  if (v.help) return help("doctor");
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

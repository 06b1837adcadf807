// `wanlab generate`: one video from a prompt, on a local engine or a running `wanlab serve`
// (--server), with its outputs (video, its .json, tensors, frames) checked before any compute and
// put in place only when complete. runGenerate is shared with `wanlab demo`.
import { rm, writeFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { CancelledError, open, type GenerateResult, type OpenOptions, type ProgressEvent } from "../engine.js";
import { paramRanges, rangeText, resolveParams, type GenerateParams, type LoraSpec } from "../params.js";
import { checkInputVideoPath } from "../video/read.js";
import { writePngFrames } from "../video/ffmpeg.js";
import { checkDistinct, checkOutputDir, checkOutputFile, commitFile, tempBeside, type OutputFileOptions } from "../fs/safe-output.js";
import { computeFlags, rangeOf } from "../options/table.js";
import { defaultModel } from "../models.js";
import { terminalProgress } from "../terminal/progress.js";
import { choice, computeOpenOptions, groupOpenOptions, help, intOption, intSyntax, numberOption, parseCommand, UsageError } from "./parse.js";
import { cliEnvRendezvous } from "./launch.js";
import { numberList, runFork } from "./fork.js";

function stageLabel(e: ProgressEvent): string {
  return e.stage === "denoise" ? `step ${e.step}/${e.total}` : e.stage === "decode" ? `VAE ${e.step}/${e.total}` : "text encoder";
}

export interface RunOptions {
  /** The model folder; undefined: the embedded tiny model, made on first use (after the checks). */
  model?: string;
  params: GenerateParams;
  output: string;
  saveTensors?: string;
  fps?: number;
  crf?: number;
  framesDir?: string;
  /** Existing regular files among the outputs may be replaced (--overwrite; demo: always). */
  overwrite?: boolean;
  /** The command that runs it, as its messages name it (default generate). */
  command?: "generate" | "demo";
  /** Run on the \`wanlab serve\` found through server.json instead of loading the model here. */
  server?: boolean;
  /** Sequence-parallel device group (local engine only). */
  parallel?: Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel" | "layout" | "transport" | "rendezvous" | "nnodes" | "nodeRank" | "timeoutS" | "logDir" | "logLevel"
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
export async function runGenerate(o: RunOptions): Promise<number> {
  // What can be checked without the model is checked before loading it (a bad value or output
  // target costs no load). Nodes 1.. write nothing.
  const checked = resolveParams(o.params);
  if (checked.inputVideo && !o.server) checkInputVideoPath(checked.inputVideo);
  // --rendezvous env:// (torchrun, Slurm): this process's rank and the group from the environment.
  if (o.parallel?.rendezvous === "env://") o.parallel = cliEnvRendezvous(o.parallel);
  const writes = !o.parallel?.nodeRank;
  const plan = writes ? planOutputs(o, checked.numFrames) : undefined;
  if (o.model === undefined && !o.server) {
    o.model = await embeddedModel();
    console.error(`wanlab ${o.command ?? "generate"}: ${o.command === "demo" ? "" : "no --model: "}using the embedded tiny model; ` +
      "its weights are random, so the video is noise-like");
  }
  const loading = terminalProgress("loading");
  loading.update(0, o.model ?? "the server's model");
  const lab = o.server ? await (await import("../client/index.js")).connectFor(o.model) : await open({ model: o.model!, ...o.parallel });
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
      model: resolvePath(o.model!),
      params: { ...result.params, seed: result.params.seed.toString() },
      fps: o.fps ?? result.video.fps,
      frames: result.video.numFrames,
      timings: result.timings,
      // The ranks' layout; with --layout auto, the rule's reason.
      parallel: lab.info.parallel,
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

/** The embedded default model's folder, made (with a progress bar) on first use. */
export async function embeddedModel(): Promise<string> {
  const progress = terminalProgress("embedded default model");
  const dir = await defaultModel((file, f) => progress.update(f, file));
  progress.done(`ready at ${dir}`);
  return dir;
}

/** --lora FILE[:SCALE], repeatable: the text after the last ':' (when it holds no '/') is the
 * scale, a decimal number (default 1); the path is made absolute (a server reads it from its own
 * working directory). A path with a ':' in its last part takes an explicit scale (a:b.safetensors:1). */
export function loraOptions(values: unknown): LoraSpec[] | undefined {
  if (values === undefined) return undefined;
  return (values as string[]).map((text) => {
    const colon = text.lastIndexOf(":");
    const tail = colon >= 0 ? text.slice(colon + 1) : "";
    const file = colon >= 0 && !tail.includes("/") ? text.slice(0, colon) : text;
    const scale = file === text ? undefined : Number(tail);
    if (file === "") throw new UsageError(`--lora needs FILE[:SCALE], got '${text}'`);
    if (scale !== undefined && (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(tail) || !Number.isFinite(scale)))
      throw new UsageError(`--lora ${text}: the scale after ':' must be a decimal number, got '${tail}'`);
    return { path: resolvePath(file), ...(scale !== undefined ? { scale } : {}) };
  });
}

export async function cmdGenerate(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "generate");
  if (v.help) return help("generate");
  if (v.steps !== undefined && v["num-inference-steps"] !== undefined) throw new UsageError("--steps is short for --num-inference-steps; give one of them");
  if (typeof v.prompt !== "string") throw new UsageError("--prompt TEXT is required");
  if (v.server && (v.devices !== undefined || v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--devices, --ulysses, --ring and --cfg-parallel apply to a local engine, not --server");
  for (const k of computeFlags)
    if (v.server && v[k] !== undefined) throw new UsageError(`--${k} applies to a local engine (or to wanlab serve), not --server`);
  if (v.server && v.transport !== undefined) throw new UsageError("--transport applies to a local engine (or to wanlab serve), not --server");
  // Numbers are decimal (an integer flag takes digits only); the ranges are resolveParams' checks.
  if (typeof v.seed === "string" && !/^\d+$/.test(v.seed))
    throw new UsageError(`--seed must be an integer, got '${v.seed}' (a decimal integer from 0 to 18446744073709551615)`);
  const params: GenerateParams = {
    prompt: v.prompt,
    negativePrompt: v["negative-prompt"] as string | undefined,
    seed: v.seed as string | undefined,
    numInferenceSteps: v.steps !== undefined ? intSyntax("steps", v.steps, paramRanges.numInferenceSteps)
      : intSyntax("num-inference-steps", v["num-inference-steps"], paramRanges.numInferenceSteps),
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
    loras: loraOptions(v.lora),
    timesteps: numberList("timesteps", v.timesteps),
    // An absolute path, as inputVideo's.
    resume: typeof v.resume === "string" ? resolvePath(v.resume) : undefined,
  };
  if (v["stop-at-step"] !== undefined)  // the first K steps, written as a fork file (src/cli/fork.ts)
    return runFork({ model: (v.model as string | undefined) ?? (await embeddedModel()), server: v.server === true, params,
      stopAtStep: intOption("stop-at-step", v["stop-at-step"] as string, ...rangeOf("generate", "stop-at-step"))!,
      saveTensors: v["save-tensors"] as string | undefined, overwrite: v.overwrite === true,
      parallel: localOpenOptions(v, params) });
  return runGenerate({
    model: v.model as string | undefined,
    server: v.server === true,
    params,
    output: (v.output as string | undefined) ?? "out.mp4",
    saveTensors: v["save-tensors"] as string | undefined,
    fps: intOption("fps", v.fps as string | undefined, ...rangeOf("generate", "fps")),
    crf: intOption("crf", v.crf as string | undefined, ...rangeOf("generate", "crf")),
    framesDir: v["frames-dir"] as string | undefined,
    overwrite: v.overwrite === true,
    parallel: localOpenOptions(v, params),
  });
}

/** The local engine's open options from generate's flags, the same for a whole run and for
 * --stop-at-step: the device group (its layout and transport too) and the compute placement, with
 * a budget planned for the one video this command makes. */
function localOpenOptions(v: ReturnType<typeof parseCommand>["values"], params: GenerateParams): NonNullable<RunOptions["parallel"]> {
  return { ...groupOpenOptions(v), ...computeOpenOptions(v), layout: choice("layout", v.layout as string | undefined, ["auto"] as const),
    transport: choice("transport", v.transport as string | undefined, ["gloo", "nccl"] as const),
    budgetVideo: { height: params.height, width: params.width, numFrames: params.numFrames, tiled: params.tiled } };
}

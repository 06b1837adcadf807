// Generation parameters: their checks, shared by the TypeScript API, the CLI and the server; their
// names, defaults and ranges are the option table's (src/options/table.ts). Names mirror
// DiffSynth-Studio's WanVideoPipeline.__call__ in camelCase; defaults are DiffSynth's (except
// `tiled`, which is opt-in here: see README).
import { randomBytes } from "node:crypto";
import { apiKeyOfEngineField, defaults, paramRowsByKey } from "./options/table.js";
import type { ResumeState } from "./fork.js";

export interface GenerateParams {
  prompt: string;
  negativePrompt?: string;
  /** Any integer in [0, 2^64 − 1] (a bigint or decimal string beyond 2^53); random when absent. */
  seed?: bigint | number | string;
  numInferenceSteps?: number;
  cfgScale?: number;
  /** Alias of cfgScale (diffusers' name). */
  guidanceScale?: number;
  sigmaShift?: number;
  height?: number;
  width?: number;
  numFrames?: number;
  /** Decode the VAE in overlapping tiles (less memory). */
  tiled?: boolean;
  /** Tile size and stride in latent units [height, width]. */
  tileSize?: [number, number];
  tileStride?: [number, number];
  /** TeaCache (DiffSynth's tea_cache_l1_thresh): steps whose time modulation moved less than this
   * (accumulated, rescaled) since the last computed step reuse its residual instead of running
   * the DiT's blocks. 0 or absent: off; 0.05 .. 0.3 typical (more skips, less fidelity). */
  teaCacheL1Thresh?: number;
  /** The calibration: "Wan2.1-T2V-1.3B" | "Wan2.1-T2V-14B"; default the one that fits the model. */
  teaCacheModelId?: string;
  /** Video-to-video (DiffSynth's input_video): a video file ffmpeg reads; its first numFrames
   * frames, scaled to width × height, are encoded and noised to start the sampler. */
  inputVideo?: string;
  /** How much of the schedule runs from the input video: sigmas start here instead of 1 (0, 1];
   * lower keeps more of the input. Below 1 it needs inputVideo. */
  denoisingStrength?: number;
  /** LoRAs on the DiT for this generation, stacked in order (docs/lora.md); the loaded weights
   * stay as they are, and a generation without LoRAs gets the base model. */
  loras?: LoraSpec[];
  /** An explicit schedule (LightX2V's denoising_step_list, e.g. [1000, 750, 500, 250]): timesteps
   * in (0, 1000], strictly decreasing, shifted by sigmaShift; its length is the number of steps
   * (numInferenceSteps, if given, must agree). Absent: numInferenceSteps evenly spaced. */
  timesteps?: number[];
  /** Continue a stopped run (docs/forks.md): a fork file (`--stop-at-step K --save-tensors FILE`)
   * or a fork state (EngineLab.fork). The model, video size and schedule must be the run's. */
  resume?: string | ResumeState;
}

/** One LoRA of a generation. */
export interface LoraSpec {
  /** A .safetensors file where the engine runs: PEFT/diffusers lora_A/lora_B, kohya
   * lora_down/lora_up with alpha, ComfyUI's diffusion_model. names and diff/diff_b. */
  path: string;
  /** Its strength, W' = W + scale · ΔW: a finite number in [-100, 100]; default 1. */
  scale?: number;
  /** false: keys that fit no weight of the model are skipped (and reported) instead of refused;
   * default true. */
  strict?: boolean;
}

/** At most this many LoRAs per generation. */
export const maxLoras = 16;

/** TeaCache calibrations the engine has (DiffSynth's text-to-video ones). */
export const teaCacheModelIds = ["Wan2.1-T2V-1.3B", "Wan2.1-T2V-14B"] as const;

export interface ResolvedParams {
  prompt: string;
  negativePrompt: string;
  seed: bigint;
  numInferenceSteps: number;
  cfgScale: number;
  sigmaShift: number;
  height: number;
  width: number;
  numFrames: number;
  tiled: boolean;
  tileSize: [number, number];
  tileStride: [number, number];
  /** 0: off. */
  teaCacheL1Thresh: number;
  /** "": the calibration that fits the model (only with teaCacheL1Thresh > 0). */
  teaCacheModelId: string;
  /** "": text to video. */
  inputVideo: string;
  denoisingStrength: number;
  /** [] without LoRAs. */
  loras: Required<LoraSpec>[];
  /** [] without a timestep list. */
  timesteps: number[];
  /** The fork file a resumed run read (a run resumed from a fork state in memory: undefined; the
   * step it resumed from is timings.resumed_from_step). */
  resume?: string;
}

export { defaults };

const rangeOfKey = (key: string): readonly [number, number] => paramRowsByKey.get(key)!.range!;

/** The allowed ranges of the numeric parameters (integers: numInferenceSteps, height, width,
 * numFrames; the others are numbers, sigmaShift and denoisingStrength exclusive of 0), read from
 * the option table (src/options/table.ts) for resolveParams and the CLI's messages. */
export const paramRanges = {
  numInferenceSteps: rangeOfKey("numInferenceSteps"),
  height: rangeOfKey("height"),
  width: rangeOfKey("width"),
  numFrames: rangeOfKey("numFrames"),
  cfgScale: rangeOfKey("cfgScale"),
  sigmaShift: rangeOfKey("sigmaShift"),
  teaCacheL1Thresh: rangeOfKey("teaCacheL1Thresh"),
  denoisingStrength: rangeOfKey("denoisingStrength"),
} satisfies Record<string, readonly [number, number]>;

/** A range as a message writes it: "[0, 100]", "(0, 1]" for the ones exclusive of 0. */
export function rangeText(field: keyof typeof paramRanges): string {
  const [min, max] = paramRanges[field];
  return `${paramRowsByKey.get(field)!.exclusiveMin ? "(" : "["}${min}, ${max}]`;
}

/** A parameter outside its allowed values; `field` names it (camelCase). */
export class ParamError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "ParamError";
  }
}

/** The engine's names (snake_case) that the API spells otherwise, for renaming them in its messages. */
const engineOnlyNames = new RegExp(`\\b(${[...apiKeyOfEngineField.keys()].filter((n) => n.includes("_")).join("|")})\\b`, "g");

/** The engine's error about a request field (the addon's code "WANLAB_PARAM" and `field`, the
 * engine's name of the field) as a ParamError on the API's name of that field, the field names in
 * its message renamed as the API spells them; undefined for any other error. The engine checks
 * every request again (and checks what only it knows, such as which TeaCache calibration fits its DiT). */
export function paramErrorFromEngine(e: unknown): ParamError | undefined {
  const { code, field, message } = (e ?? {}) as { code?: unknown; field?: unknown; message?: unknown };
  if (code !== "WANLAB_PARAM" || typeof field !== "string" || typeof message !== "string") return undefined;
  const key = apiKeyOfEngineField.get(field);
  if (key === undefined) return undefined;
  return new ParamError(key, message.replace(engineOnlyNames, (n) => apiKeyOfEngineField.get(n)!));
}

const maxSeed = (1n << 64n) - 1n;

export function parseSeed(value: bigint | number | string): bigint {
  let s: bigint;
  if (typeof value === "bigint") s = value;
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new ParamError("seed", `seed must be an integer from 0 to 2^64-1 (a bigint or string beyond 2^53), got ${value}`);
    s = BigInt(value);
  } else {
    if (!/^\d+$/.test(value.trim())) throw new ParamError("seed", `seed must be an integer from 0 to 2^64-1, got '${value}'`);
    s = BigInt(value.trim());
  }
  if (s < 0n || s > maxSeed) throw new ParamError("seed", `seed must be an integer from 0 to 2^64-1, got ${s}`);
  return s;
}

export function randomSeed(): bigint {
  return randomBytes(8).readBigUInt64LE();
}

function int(field: string, v: number, min: number, max: number, extra?: (n: number) => string | undefined): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new ParamError(field, `${field} must be an integer from ${min} to ${max}, got ${v}`);
  const why = extra?.(v);
  if (why) throw new ParamError(field, `${field} ${why}, got ${v}`);
  return v;
}

function num(field: string, v: number, min: number, max: number, openMin = false, errorField = field): number {
  if (typeof v !== "number" || !Number.isFinite(v) || (openMin ? v <= min : v < min) || v > max)
    throw new ParamError(errorField, `${field} must be a number in ${openMin ? "(" : "["}${min}, ${max}], got ${v}`);
  return v;
}

function pair(field: string, v: [number, number]): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw new ParamError(field, `${field} must be [height, width] in latent units`);
  return [int(`${field}[0]`, v[0], 1, 1024), int(`${field}[1]`, v[1], 1, 1024)];
}

/** The GenerateParams field names, in the order the server's messages list them. */
export const paramKeys: readonly string[] = [...paramRowsByKey.keys()].filter((k): k is string => typeof k === "string");

/** Refuses a key that is not a GenerateParams field (a typo would otherwise fall back to its
 * default silently), with the server's message for an unknown job field. */
export function refuseUnknownParams(p: object, allowed: readonly string[] = paramKeys): void {
  for (const key of Object.keys(p))
    if (!allowed.includes(key)) throw new ParamError(key, `unknown parameter '${key}'; allowed: ${allowed.join(", ")}`);
}

function loras(v: unknown): Required<LoraSpec>[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > maxLoras)
    throw new ParamError("loras", `loras must be an array of at most ${maxLoras} { path, scale, strict } objects`);
  return v.map((l: unknown, i) => {
    const { path, scale, strict, ...rest } = (l ?? {}) as LoraSpec;
    if (typeof l !== "object" || l === null || Array.isArray(l)) throw new ParamError("loras", `loras[${i}] must be an object { path, scale, strict }`);
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new ParamError("loras", `loras[${i}] has an unknown key '${extra}'; allowed: path, scale, strict`);
    if (typeof path !== "string" || path === "") throw new ParamError("loras", `loras[${i}].path must be a file path, got ${JSON.stringify(path)}`);
    if (strict !== undefined && typeof strict !== "boolean") throw new ParamError("loras", `loras[${i}].strict must be a boolean`);
    return { path, scale: num(`loras[${i}].scale`, scale ?? 1, -100, 100, false, "loras"), strict: strict ?? true };
  });
}

function timestepList(v: unknown, steps: number | undefined): number[] {
  if (v === undefined || (Array.isArray(v) && v.length === 0)) return [];  // [] as resolveParams gives it back: none
  if (!Array.isArray(v) || v.length > 1000) throw new ParamError("timesteps", "timesteps must be an array of at most 1000 numbers");
  v.forEach((t, i) => {
    if (typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > 1000) throw new ParamError("timesteps", `timesteps[${i}] = ${t} is outside (0, 1000]`);
    if (i > 0 && !(t < v[i - 1])) throw new ParamError("timesteps", `timesteps[${i}] = ${t} is not below timesteps[${i - 1}] = ${v[i - 1]}: timesteps must be strictly decreasing`);
  });
  if (steps !== undefined && steps !== v.length) throw new ParamError("timesteps", `timesteps lists ${v.length} steps but numInferenceSteps is ${steps}; give one of them`);
  return [...v] as number[];
}

function resumeOf(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string") {
    if (v === "") throw new ParamError("resume", "resume must be a fork file or a fork state, got ''");
    return v;
  }
  const s = v as Partial<ResumeState>;
  if (typeof v !== "object" || v === null || !Number.isInteger(s.fromStep) || s.fromStep! < 0)
    throw new ParamError("resume", "resume must be a fork file or { latents, fromStep } with fromStep an integer >= 0");
  if (!(s.latents?.data instanceof Float32Array) || !Array.isArray(s.latents.shape) || s.latents.shape.length !== 4)
    throw new ParamError("resume", "resume.latents must be { data: Float32Array, shape: [16, f, h, w] }");
  return undefined;
}

/** Applies defaults and checks every field; the first bad one throws a ParamError naming it. */
export function resolveParams(p: GenerateParams): ResolvedParams {
  if (typeof p.prompt !== "string") throw new ParamError("prompt", "prompt must be a string");
  if (p.negativePrompt !== undefined && typeof p.negativePrompt !== "string") throw new ParamError("negativePrompt", "negativePrompt must be a string");
  if (p.cfgScale !== undefined && p.guidanceScale !== undefined && p.cfgScale !== p.guidanceScale)
    throw new ParamError("cfgScale", "cfgScale and guidanceScale are the same parameter; give one");
  const r: ResolvedParams = {
    prompt: p.prompt,
    negativePrompt: p.negativePrompt ?? defaults.negativePrompt,
    seed: p.seed === undefined ? randomSeed() : parseSeed(p.seed),
    numInferenceSteps: int("numInferenceSteps", p.numInferenceSteps ?? defaults.numInferenceSteps, ...paramRanges.numInferenceSteps),
    cfgScale: num("cfgScale", p.cfgScale ?? p.guidanceScale ?? defaults.cfgScale, ...paramRanges.cfgScale),
    sigmaShift: num("sigmaShift", p.sigmaShift ?? defaults.sigmaShift, ...paramRanges.sigmaShift, true),
    height: int("height", p.height ?? defaults.height, ...paramRanges.height, (n) => (n % 16 ? "must be a multiple of 16" : undefined)),
    width: int("width", p.width ?? defaults.width, ...paramRanges.width, (n) => (n % 16 ? "must be a multiple of 16" : undefined)),
    numFrames: int("numFrames", p.numFrames ?? defaults.numFrames, ...paramRanges.numFrames, (n) => ((n - 1) % 4 ? "must be 4k+1 (1, 5, 9, ..., 81)" : undefined)),
    tiled: p.tiled ?? defaults.tiled,
    tileSize: pair("tileSize", p.tileSize ?? defaults.tileSize),
    tileStride: pair("tileStride", p.tileStride ?? defaults.tileStride),
    teaCacheL1Thresh: num("teaCacheL1Thresh", p.teaCacheL1Thresh ?? defaults.teaCacheL1Thresh, ...paramRanges.teaCacheL1Thresh),
    teaCacheModelId: p.teaCacheModelId ?? defaults.teaCacheModelId,
    inputVideo: p.inputVideo ?? defaults.inputVideo,
    denoisingStrength: num("denoisingStrength", p.denoisingStrength ?? defaults.denoisingStrength, ...paramRanges.denoisingStrength, true),
    loras: loras(p.loras),
    timesteps: timestepList(p.timesteps, p.numInferenceSteps),
    resume: resumeOf(p.resume),
  };
  if (r.timesteps.length) r.numInferenceSteps = r.timesteps.length;
  if (typeof r.inputVideo !== "string") throw new ParamError("inputVideo", "inputVideo must be a path to a video file");
  if (r.denoisingStrength < 1 && r.inputVideo === "")
    throw new ParamError("denoisingStrength", `denoisingStrength ${r.denoisingStrength} < 1 starts from a noised input video; give inputVideo`);
  if (r.teaCacheModelId !== "" && !(teaCacheModelIds as readonly string[]).includes(r.teaCacheModelId))
    throw new ParamError("teaCacheModelId", `teaCacheModelId must be one of ${teaCacheModelIds.join(", ")}, got '${r.teaCacheModelId}'`);
  if (r.teaCacheModelId !== "" && r.teaCacheL1Thresh === 0)
    throw new ParamError("teaCacheModelId", "teaCacheModelId is given without teaCacheL1Thresh, which turns TeaCache on");
  if (typeof r.tiled !== "boolean") throw new ParamError("tiled", "tiled must be a boolean");
  if (r.tileStride[0] > r.tileSize[0] || r.tileStride[1] > r.tileSize[1]) throw new ParamError("tileStride", "tileStride must not exceed tileSize");
  return r;
}

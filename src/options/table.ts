// The one option table: every command-line flag and generation parameter with its API key, type,
// default, allowed values and help. The CLI's parsers (node:util parseArgs configs), its usage text
// (`wanlab help`, `wanlab COMMAND --help`), docs/cli.md and the server's job schema are made from it
// (src/options/usage.ts, src/server/schema.ts); src/params.ts reads its defaults and ranges.

/** A command (or subcommand) whose flags the table lists. */
export type Command = "demo" | "generate" | "inspect" | "make-tiny" | "bench-model" | "bench-load" | "bench-parallel" | "bench-projection" | "serve"
  | "kernel-install" | "kernel-uninstall" | "kernel-list" | "doctor";

/** How a value is read: "integer" decimal digits in `range`; "number" a finite decimal in
 * `range`; "count" digits with an optional K/M/G suffix (24G); "budget" a count, auto (or none
 * where `choices` says); "device" cpu, cuda or cuda:N; "seed" an integer in [0, 2^64-1];
 * "pair" [height, width] (API only); "string" text or a path; "loras" FILE[:SCALE] on the CLI,
 * [{ path, scale?, strict? }] in the API; "numbers" N1,N2,... on the CLI, an array in the API. */
export type OptionType = "string" | "boolean" | "integer" | "number" | "seed" | "count" | "budget" | "choice" | "device" | "pair" | "loras" | "numbers";

export interface OptionRow {
  /** The flag without "--"; absent: an API field with no flag. */
  flag?: string;
  /** The API's name: a GenerateParams field (`param`), an OpenOptions field or a job option. */
  key?: string;
  /** The engine's name of a request field (snake_case), as its errors' `field` spells it. */
  engine?: string;
  type: OptionType;
  /** The value's placeholder in usage lines (N, X, DIR); choices: "a|b|c". */
  value?: string;
  /** The default as the reference states it (params' defaults come from `defaults`; a boolean's is off). */
  default?: string;
  /** The flag as a user would type it, with any flags it goes with: `--num-inference-steps 30`. */
  example?: string;
  range?: readonly [number, number];
  /** The range excludes its minimum: (0, 100]. */
  exclusiveMin?: boolean;
  choices?: readonly string[];
  help: string;
  commands: readonly Command[];
  /** The flag may be given more than once. */
  multiple?: boolean;
  /** Shown unbracketed in the usage line. */
  required?: boolean;
  /** A GenerateParams field: resolveParams holds its range (the CLI checks the syntax). */
  param?: boolean;
  /** Shortest and longest string the server's job schema takes. */
  minLength?: number;
  maxLength?: number;
}

/** Generation defaults (DiffSynth-Studio's, except `tiled`, which is opt-in). */
export const defaults = {
  negativePrompt: "",
  numInferenceSteps: 50,
  cfgScale: 5.0,
  sigmaShift: 5.0,
  height: 480,
  width: 832,
  numFrames: 81,
  tiled: false,
  tileSize: [30, 52] as [number, number],
  tileStride: [15, 26] as [number, number],
  teaCacheL1Thresh: 0,
  teaCacheModelId: "",
  inputVideo: "",
  denoisingStrength: 1.0,
};

/** Prompts longer than this are refused (the text encoder reads 512 tokens). */
export const maxPromptChars = 8192;

const G: readonly Command[] = ["generate"];
const GS: readonly Command[] = ["generate", "serve"];
const GIS: readonly Command[] = ["generate", "inspect", "serve"];
/** The device group's rows that `wanlab doctor` takes for its link check too. */
const GISD: readonly Command[] = [...GIS, "doctor"];
const GSD: readonly Command[] = ["generate", "serve", "doctor"];
const BM: readonly Command[] = ["bench-model"];
const BP: readonly Command[] = ["bench-projection"];
/** The link presets of `bench projection`. */
const links = ["nvlink4", "ib400", "pcie4"] as const;
const logLevels = ["error", "warn", "info", "debug"] as const;
const dtypes = ["f32", "bf16", "f16"] as const;

/** The generation parameters (GenerateParams), in DiffSynth's order, after generate's model. */
const paramRows: OptionRow[] = [
  { flag: "model", type: "string", value: "DIR", default: "the embedded tiny model, whose weights are random", example: "--model ~/models/Wan2.1-T2V-1.3B", commands: G, help: "the model folder (official, diffusers or ComfyUI layout; with --server: the model the server must serve)" },
  { flag: "prompt", key: "prompt", engine: "prompt", type: "string", value: "TEXT", required: true, param: true, maxLength: maxPromptChars, example: '--prompt "a red fox running through snow"', commands: G,
    help: "what the video shows" },
  { flag: "negative-prompt", key: "negativePrompt", engine: "negative_prompt", type: "string", value: "TEXT", param: true, maxLength: maxPromptChars, default: "none", example: '--negative-prompt "blurry, low quality"', commands: G,
    help: "what it should not show" },
  { flag: "seed", key: "seed", engine: "seed", type: "seed", value: "N", default: "random (printed)", param: true, example: "--seed 42", commands: G,
    help: "the noise seed" },
  { flag: "num-inference-steps", key: "numInferenceSteps", engine: "num_inference_steps", type: "integer", value: "N", range: [1, 1000], param: true, example: "--num-inference-steps 30", commands: G,
    help: "denoising steps" },
  { flag: "cfg-scale", key: "cfgScale", engine: "cfg_scale", type: "number", value: "X", range: [0, 100], param: true, example: "--cfg-scale 6", commands: G,
    help: "classifier-free guidance scale (1: no negative pass)" },
  { key: "guidanceScale", type: "number", param: true, commands: [], help: "alias of cfgScale (diffusers' name)" },
  { flag: "sigma-shift", key: "sigmaShift", engine: "sigma_shift", type: "number", value: "X", range: [0, 100], exclusiveMin: true, param: true, example: "--sigma-shift 3", commands: G,
    help: "the flow-matching schedule's shift" },
  { flag: "timesteps", key: "timesteps", engine: "timesteps", type: "numbers", value: "T1,T2,...", range: [0, 1000], exclusiveMin: true, param: true, default: "none: --num-inference-steps evenly spaced", example: "--timesteps 1000,750,500,250 --cfg-scale 1", commands: G,
    help: "an explicit schedule, strictly decreasing (LightX2V's denoising_step_list), shifted by --sigma-shift; its length is the number of steps" },
  { flag: "height", key: "height", engine: "height", type: "integer", value: "N", range: [16, 4096], param: true, example: "--height 720 --width 1280", commands: G,
    help: "video height in pixels, a multiple of 16" },
  { flag: "width", key: "width", engine: "width", type: "integer", value: "N", range: [16, 4096], param: true, example: "--width 1280 --height 720", commands: G,
    help: "video width in pixels, a multiple of 16" },
  { flag: "num-frames", key: "numFrames", engine: "num_frames", type: "integer", value: "N", range: [1, 1001], param: true, example: "--num-frames 33", commands: G,
    help: "frames, 4k+1 (1, 5, 9, ..., 81)" },
  { flag: "tiled", key: "tiled", engine: "tiled", type: "boolean", param: true, example: "--tiled --height 720 --width 1280", commands: G,
    help: "decode the VAE in overlapping tiles (less memory)" },
  { key: "tileSize", engine: "tile_size", type: "pair", param: true, commands: [], help: "tile size [height, width] in latent units" },
  { key: "tileStride", engine: "tile_stride", type: "pair", param: true, commands: [], help: "tile stride [height, width] in latent units, at most tileSize" },
  { flag: "tea-cache-l1-thresh", key: "teaCacheL1Thresh", engine: "tea_cache_l1_thresh", type: "number", value: "X", range: [0, 10], param: true, example: "--tea-cache-l1-thresh 0.1", commands: G,
    help: "TeaCache: steps whose time modulation moved less than this reuse the last residual (0: off; 0.05 .. 0.3 typical)" },
  { flag: "tea-cache-model-id", key: "teaCacheModelId", engine: "tea_cache_model_id", type: "string", value: "ID", param: true, maxLength: 64, example: "--tea-cache-model-id Wan2.1-T2V-14B", commands: G,
    choices: ["Wan2.1-T2V-1.3B", "Wan2.1-T2V-14B"], default: "the calibration that fits the model",
    help: "TeaCache's calibration (with --tea-cache-l1-thresh)" },
  { flag: "input-video", key: "inputVideo", engine: "input_video", type: "string", value: "FILE", param: true, minLength: 1, maxLength: 4096, example: "--input-video in.mp4 --denoising-strength 0.7", commands: G, default: "none (text to video)",
    help: "video to video: a file ffmpeg reads, its first frames scaled to the size" },
  { flag: "denoising-strength", key: "denoisingStrength", engine: "denoising_strength", type: "number", value: "X", range: [0, 1], exclusiveMin: true, param: true, example: "--denoising-strength 0.7 --input-video in.mp4", commands: G,
    help: "how much of the schedule runs from the input video (below 1 needs --input-video)" },
  { flag: "lora", key: "loras", engine: "loras", type: "loras", value: "FILE[:SCALE]", multiple: true, param: true, default: "none", example: "--lora style.safetensors:0.8 --lora motion.safetensors", commands: [...G, "inspect"],
    help: "a LoRA on the DiT at SCALE (default 1; repeatable, stacked in order): merged into a working copy, the loaded weights stay as they are" },
  { flag: "resume", key: "resume", engine: "resume", type: "string", value: "FILE", param: true, minLength: 1, maxLength: 4096, default: "none", example: "--resume fork.safetensors --prompt \"a red fox at dusk\"", commands: G,
    help: "continue a run stopped with --stop-at-step from its saved latents (same model, size and schedule; prompt, CFG and TeaCache may change)" },
];

/** The ranks and their layout, several nodes, logs: native ParallelOptions (OpenOptions). */
const groupRows: OptionRow[] = [
  { flag: "devices", key: "devices", type: "string", value: "LIST", default: "auto: cuda:0 when a GPU is visible, else cpu", example: "--devices cuda:0,1", commands: GISD,
    help: "the ranks: cpu, cpu:0-3, cuda:0,1, ...; cuda:0x4: 4 ranks sharing GPU 0 (a test mode, on gloo)" },
  { flag: "ulysses", key: "ulysses", type: "integer", value: "N", range: [1, 1024], default: "chosen", example: "--devices cuda:0-3 --ulysses 2 --ring 2", commands: GIS, help: "Ulysses (head-parallel) degree" },
  { flag: "ring", key: "ring", type: "integer", value: "N", range: [1, 1024], default: "chosen", example: "--devices cuda:0-3 --ring 4", commands: GIS, help: "ring-attention degree" },
  { flag: "cfg-parallel", key: "cfgParallel", type: "boolean", example: "--devices cuda:0,1 --cfg-parallel", commands: GIS, help: "the conditional and unconditional passes on two halves of the devices" },
  { flag: "rendezvous", key: "rendezvous", type: "string", value: "tcp://HOST:PORT|env://", default: "none (one node)", example: "--rendezvous tcp://10.0.0.1:29500 --nnodes 2 --node-rank 0", commands: GSD, help: "several nodes: where they meet (env://: torchrun's or Slurm's MASTER_ADDR, RANK, WORLD_SIZE, ..., one rank per process)" },
  { flag: "layout", key: "layout", type: "choice", choices: ["auto"], value: "auto", default: "the degrees given, else chosen: Ulysses up to the heads, ring the rest", example: "--devices cuda:0-7 --layout auto", commands: GIS, help: "auto: ulysses × ring × cfg-parallel picked from the ranks, heads and nodes (the reason is in the .json; inspect prints it)" },
  { flag: "transport", key: "transport", type: "choice", choices: ["gloo", "nccl"], value: "gloo|nccl", default: "nccl between CUDA ranks when the build has NCCL, else gloo (always gloo for cuda:KxN)", example: "--devices cuda:0-7 --transport gloo", commands: GSD,
    help: "how ranks exchange tensors: nccl GPU to GPU; gloo through pinned host memory, for machines where NCCL or peer-to-peer is broken" },
  { flag: "nnodes", key: "nnodes", type: "integer", value: "N", range: [1, 1024], default: "1", example: "--nnodes 2", commands: GSD, help: "several nodes: how many" },
  { flag: "node-rank", key: "nodeRank", type: "integer", value: "K", range: [0, 1023], default: "0", example: "--node-rank 1", commands: GSD, help: "several nodes: this one (node 0 writes the outputs)" },
  { flag: "timeout", key: "timeoutS", type: "number", value: "S", range: [0, 86400], exclusiveMin: true, default: "300", example: "--timeout 600", commands: GS, help: "collective timeout in seconds" },
  { flag: "timeout", key: "timeoutS", type: "number", value: "S", range: [0, 86400], exclusiveMin: true, default: "30", example: "--devices cpu:0-1 --timeout 10", commands: ["doctor"], help: "the link check's limit in seconds: a rank that has not joined by then is named" },
  { flag: "log-dir", key: "logDir", type: "string", value: "DIR", default: "none (stderr)", example: "--log-dir runs/logs", commands: GS, help: "one log file per rank" },
  { flag: "log-level", key: "logLevel", type: "choice", choices: logLevels, default: "$WANLAB_LOG_LEVEL, else warn", example: "--log-level info", commands: GS, help: "the ranks' log level" },
];

/** Compute placement and memory: native ComputeOptions (OpenOptions). */
const computeRows: OptionRow[] = [
  { flag: "dtype", key: "dtype", type: "choice", choices: dtypes, default: "f32 on the CPU, bf16 on CUDA", example: "--dtype f16", commands: GS, help: "compute dtype of the models" },
  { flag: "t5-device", key: "t5Device", type: "device", value: "DEV", default: "the DiT's device", example: "--t5-device cpu", commands: GS, help: "where the text encoder runs" },
  { flag: "t5-device", key: "t5Device", type: "choice", choices: ["cpu", "cuda"], default: "the DiT's device", example: "--t5-device cpu", commands: ["inspect"], help: "where the text encoder would run" },
  { flag: "t5-offload", key: "t5Offload", type: "boolean", example: "--t5-offload", commands: GIS, help: "keep the text encoder's weights in host memory between prompts" },
  { flag: "vae-device", key: "vaeDevice", type: "device", value: "DEV", default: "the DiT's device", example: "--vae-device cuda:1", commands: GS, help: "where the VAE runs" },
  { flag: "persistent-params", key: "persistentParams", type: "count", value: "N", default: "all of them (none stream)", example: "--persistent-params 6G", commands: GIS,
    help: "DiT parameters kept on the GPU; the rest stream in per block (24G = 24e9)" },
  { flag: "shard-weights", key: "shardWeights", type: "boolean", example: "--devices cuda:0-3 --shard-weights", commands: GIS, help: "shard the DiT's weights over the sequence-parallel ranks" },
  { flag: "budget", key: "budget", type: "budget", value: "BYTES|auto", default: "none", example: "--budget 24G", commands: ["generate", "inspect"],
    help: "24G: the DiT blocks that fit beside this video stay on the GPU, the rest stream in; auto: the GPU's memory less 1.5 GB" },
  { flag: "budget", key: "budget", type: "budget", value: "BYTES|auto|none", choices: ["auto", "none"], default: "unset: jobs predicted beyond the memory are refused", example: "--budget 70G", commands: ["serve"],
    help: "plans for 480x832x81 and refuses jobs predicted to exceed it; none: no budget and no such guard" },
];

/** The compute flags (a local engine's, or serve's: not generate --server's), in table order. */
export const computeFlags: readonly string[] = [...new Set(computeRows.map((r) => r.flag!))];

/** What each command adds. */
const commandRows: OptionRow[] = [
  { flag: "steps", type: "integer", value: "N", range: [1, 1000], default: "50", example: "--steps 30", commands: G,
    help: "short for --num-inference-steps (as the scripts spell it)" },
  { flag: "output", type: "string", value: "out.mp4", default: "wanlab-demo.mp4", example: "--output cat.mp4", commands: ["demo"], help: "the video (and its .json); each run replaces them" },
  { flag: "output", type: "string", value: "out.mp4", default: "out.mp4", example: "--output runs/fox.mp4", commands: G, help: "the video; its metadata goes to out.mp4.json" },
  { flag: "save-tensors", type: "string", value: "out.safetensors", default: "none", example: "--save-tensors runs/fox.safetensors", commands: G, help: "also write the float32 noise, context, latents and video" },
  { flag: "stop-at-step", type: "integer", value: "K", range: [1, 999], default: "none (run to the end)", example: "--stop-at-step 10 --save-tensors fork.safetensors", commands: G,
    help: "stop after step K and write the latents and what --resume needs to --save-tensors (no video)" },
  { flag: "fps", key: "fps", type: "integer", value: "N", range: [1, 240], default: "15", example: "--fps 24", commands: G, help: "frames per second of the mp4" },
  { flag: "crf", key: "crf", type: "integer", value: "N", range: [0, 51], default: "5", example: "--crf 18", commands: G, help: "x264 quality (lower: better, bigger)" },
  { flag: "frames-dir", type: "string", value: "DIR", default: "none", example: "--frames-dir runs/fox-frames", commands: G, help: "also write each frame as DIR/N.png" },
  { flag: "overwrite", type: "boolean", example: "--overwrite --output out.mp4", commands: G, help: "replace existing output files (regular files only)" },
  { flag: "server", type: "boolean", default: "off (load the model here)", example: '--server --prompt "a cat"', commands: G, help: "run on the `wanlab serve` found through server.json instead of loading the model here" },
  { flag: "json", type: "boolean", example: "--json > report.json", commands: ["inspect"], help: "the report as JSON" },
  { flag: "height", type: "integer", value: "N", range: [16, 8192], default: "480", example: "--height 720 --width 1280", commands: ["inspect"], help: "the video the memory plan is for" },
  { flag: "width", type: "integer", value: "N", range: [16, 8192], default: "832", example: "--width 1280 --height 720", commands: ["inspect"], help: "the video the memory plan is for" },
  { flag: "num-frames", type: "integer", value: "N", range: [1, 4097], default: "81", example: "--num-frames 121", commands: ["inspect"], help: "the video the memory plan is for" },
  { flag: "tiled", type: "boolean", example: "--tiled --budget 24G", commands: ["inspect"], help: "plan for a tiled VAE decode" },
  { flag: "layout", type: "choice", choices: ["official", "sharded", "diffusers", "comfyui", "comfyui-fp8"], default: "official", example: "--layout diffusers", commands: ["make-tiny"],
    help: "the folder layout to write" },
  { flag: "seed", type: "integer", value: "N", range: [0, Number.MAX_SAFE_INTEGER], default: "0", example: "--seed 7", commands: ["make-tiny"], help: "the random weights' seed" },
  { flag: "dims", type: "choice", choices: ["tiny", "1.3B", "14B"], default: "tiny", example: "--dims 1.3B", commands: ["make-tiny"], help: "the architecture's sizes" },
  { flag: "json", type: "boolean", example: "--json > dit.json", commands: BM, help: "the report as JSON" },
  { flag: "dims", type: "choice", choices: ["tiny", "1.3B", "14B"], default: "1.3B", example: "--dims 14B", commands: BM, help: "the architecture's sizes" },
  { flag: "layers", type: "integer", value: "N", range: [1, 100], default: "the bench's choice for the dims", example: "--layers 2", commands: BM, help: "DiT blocks to run" },
  { flag: "frames", type: "integer", value: "N", range: [1, 1001], default: "the bench's choice for the dims", example: "--frames 21", commands: BM, help: "video frames of the input" },
  { flag: "height", type: "integer", value: "N", range: [8, 8192], default: "the bench's choice for the dims", example: "--height 480", commands: BM, help: "input height in pixels" },
  { flag: "width", type: "integer", value: "N", range: [8, 8192], default: "the bench's choice for the dims", example: "--width 832", commands: BM, help: "input width in pixels" },
  { flag: "tokens", type: "integer", value: "N", range: [1, 4096], default: "512", example: "--tokens 128", commands: BM, help: "text tokens (t5)" },
  { flag: "iters", type: "integer", value: "N", range: [1, 1000], default: "3", example: "--iters 10", commands: BM, help: "timed forwards" },
  { flag: "warmup", type: "integer", value: "N", range: [0, 1000], default: "1", example: "--warmup 2", commands: BM, help: "untimed forwards first" },
  { flag: "threads", type: "integer", value: "N", range: [1, 1024], default: "libtorch's (the machine's cores)", example: "--threads 8", commands: BM, help: "CPU threads of both sides" },
  { flag: "diffsynth", type: "string", value: "DIR", default: "$DIFFSYNTH_DIR", example: "--diffsynth ~/src/DiffSynth-Studio", commands: BM, help: "DiffSynth-Studio's checkout for the peer" },
  { flag: "python", type: "string", value: "PATH", default: "$WANLAB_PYTHON, else python3", example: "--python .venv/bin/python", commands: BM, help: "the Python that runs the peer" },
  { flag: "no-peer", type: "boolean", example: "--no-peer", commands: BM, help: "time wanlab only" },
  { flag: "device", type: "device", value: "cpu|cuda[:N]", default: "cpu", example: "--device cuda:0", commands: BM, help: "where both sides run" },
  { flag: "dtype", type: "choice", choices: dtypes, default: "f32 on the CPU, bf16 on CUDA", example: "--dtype bf16", commands: BM, help: "compute dtype of both sides" },
  { flag: "touch", type: "boolean", example: "--touch", commands: ["bench-load"], help: "also read every weight once (resident memory after touching)" },
  { flag: "json", type: "boolean", example: "--json > parallel.json", commands: ["bench-parallel"], help: "the report as JSON" },
  { flag: "html", type: "string", value: "FILE", default: "none", example: "--html parallel.html", commands: ["bench-parallel"], help: "also write a plotly page" },
  { flag: "overwrite", type: "boolean", example: "--overwrite --html parallel.html", commands: ["bench-parallel"], help: "replace an existing --html file" },
  { flag: "model", type: "string", value: "DIR", default: "a tiny generated model", example: "--model ~/models/tiny", commands: ["bench-parallel"], help: "the model to run" },
  { flag: "height", type: "integer", value: "N", range: [16, 4096], default: "128", example: "--height 256", commands: ["bench-parallel"], help: "video height in pixels" },
  { flag: "width", type: "integer", value: "N", range: [16, 4096], default: "128", example: "--width 256", commands: ["bench-parallel"], help: "video width in pixels" },
  { flag: "num-frames", type: "integer", value: "N", range: [1, 1001], default: "9", example: "--num-frames 17", commands: ["bench-parallel"], help: "video frames" },
  { flag: "steps", type: "integer", value: "N", range: [1, 1000], default: "2", example: "--steps 4", commands: ["bench-parallel"], help: "denoising steps" },
  { flag: "layouts", type: "string", value: "A,B", default: "every layout", example: "--layouts 1x1,2x1", commands: ["bench-parallel"], help: "the layouts to run" },
  { flag: "work-dir", type: "string", value: "DIR", default: "$TMPDIR/wanlab-bench-parallel", example: "--work-dir /tmp/bp", commands: ["bench-parallel"], help: "where the ranks' files go" },
  { flag: "json", type: "boolean", example: "--json > projection.json", commands: BP, help: "the report as JSON" },
  { flag: "html", type: "string", value: "FILE", default: "none", example: "--html projection.html", commands: BP, help: "also write the chart: an offline plotly page (scripts/projection.mjs)" },
  { flag: "overwrite", type: "boolean", example: "--overwrite --html projection.html", commands: BP, help: "replace an existing --html file" },
  { flag: "dims", type: "choice", choices: ["tiny", "1.3B", "14B"], default: "1.3B", example: "--dims 14B", commands: BP, help: "the model's sizes (random weights, nothing to download)" },
  { flag: "heads", type: "integer", value: "N", range: [1, 1024], default: "the model's", example: "--dims tiny --heads 8", commands: BP, help: "another head count at the same dim (to try Ulysses degrees on the tiny model)" },
  { flag: "height", type: "integer", value: "N", range: [16, 8192], default: "480", example: "--height 720 --width 1280", commands: BP, help: "video height in pixels, a multiple of 16" },
  { flag: "width", type: "integer", value: "N", range: [16, 8192], default: "832", example: "--width 1280 --height 720", commands: BP, help: "video width in pixels, a multiple of 16" },
  { flag: "frames", type: "integer", value: "N", range: [1, 1001], default: "81", example: "--frames 81", commands: BP, help: "video frames, 4k+1" },
  { flag: "steps", type: "integer", value: "N", range: [1, 1000], default: "50", example: "--steps 30", commands: BP, help: "steps of the video: total = steps × seconds per step" },
  { flag: "cfg-scale", type: "number", value: "X", range: [0, 100], default: "5", example: "--cfg-scale 1", commands: BP, help: "not 1: two DiT passes per step, one per GPU half with CFG-parallel" },
  { flag: "gpus", type: "string", value: "N1,N2,...", choices: ["1", "2", "4", "8", "16"], default: "1,2,4,8,16", example: "--gpus 1,8", commands: BP, help: "the GPU counts whose default layouts run (16: two nodes of 8)" },
  { flag: "layouts", type: "string", value: "L1,L2,...", default: "each GPU count's set", example: "--layouts u8,u4r2,cfg-u4", commands: BP,
    help: "layouts by name: 1, uN (Ulysses), rN (ring), uNrM, cfg, cfg-uN, cfg-uNrM (N, M >= 2), -shard at the end for sharded weights" },
  { flag: "shard-weights", type: "boolean", example: "--shard-weights", commands: BP, help: "every layout with two or more sequence-parallel ranks with sharded weights" },
  { flag: "link", type: "choice", choices: links, default: "nvlink4", example: "--link pcie4", commands: BP, help: "the link within a node: 450, 50 or 25 GB/s per GPU and direction" },
  { flag: "links", type: "string", value: "FILE", default: "none", example: "--links links.json", commands: BP, help: "instead, the links `wanlab doctor --devices ... --json` measured" },
  { flag: "inter-link", type: "choice", choices: links, default: "ib400", example: "--inter-link ib400", commands: BP, help: "the link between nodes" },
  { flag: "gpus-per-node", type: "integer", value: "N", range: [1, 1024], default: "8", example: "--gpus-per-node 4", commands: BP, help: "where a group of ranks leaves its node" },
  { flag: "blocks", type: "integer", value: "N", range: [1, 100], default: "2", example: "--blocks 1", commands: BP, help: "DiT blocks timed per forward (one more runs untimed)" },
  { flag: "warmup", type: "integer", value: "N", range: [0, 1000], default: "1", example: "--warmup 2", commands: BP, help: "untimed forwards first" },
  { flag: "iters", type: "integer", value: "N", range: [1, 1000], default: "3", example: "--iters 5", commands: BP, help: "timed forwards (their median counts)" },
  { flag: "device", type: "device", value: "cpu|cuda[:N]", default: "cpu", example: "--device cuda", commands: BP, help: "where one rank's work is timed" },
  { flag: "dtype", type: "choice", choices: dtypes, default: "f32 on the CPU, bf16 on CUDA", example: "--dtype bf16", commands: BP, help: "compute dtype" },
  { flag: "threads", type: "integer", value: "N", range: [1, 1024], default: "libtorch's (the machine's cores)", example: "--threads 8", commands: BP, help: "CPU threads" },
  { flag: "seed", type: "integer", value: "N", range: [0, 2147483647], default: "0", example: "--seed 7", commands: BP, help: "the random weights' seed" },
  { flag: "measured", type: "string", value: "FILE", default: "none", example: "--measured projection.json --link pcie4", commands: BP,
    help: "project a previous run's JSON again (same model and video; other links, steps or layouts) without timing anything" },
  { flag: "model", type: "string", value: "DIR", default: "the embedded default model", example: "--model ~/models/Wan2.1-T2V-1.3B", commands: ["serve"], help: "the model to load once" },
  { flag: "host", type: "string", value: "127.0.0.1", default: "127.0.0.1", example: "--host 0.0.0.0 --allow-remote", commands: ["serve"], help: "the address to listen on" },
  { flag: "port", type: "integer", value: "0", range: [0, 65535], default: "0 (any free port)", example: "--port 8765", commands: ["serve"], help: "the port to listen on" },
  { flag: "outputs", type: "string", value: "DIR", default: "$WANLAB_HOME/outputs", example: "--outputs runs/server", commands: ["serve"], help: "where jobs write their files" },
  { flag: "allow-remote", type: "boolean", example: "--allow-remote --host 0.0.0.0", commands: ["serve"], help: "listen on an address other than loopback" },
  { flag: "grace", type: "integer", value: "S", range: [0, 86400], default: "30", example: "--grace 120", commands: ["serve"], help: "seconds a shutdown waits for the running job" },
  { flag: "quiet", type: "boolean", example: "--quiet", commands: ["serve"], help: "no console line per job event (accepted, started, progress, done, failed, cancelled)" },
  { flag: "user", type: "boolean", default: "on, unless root (the system's kernels)", example: "--user", commands: ["kernel-install"], help: "install for this user (one of --user, --prefix, --sys-prefix)" },
  { flag: "prefix", type: "string", value: "P", default: "none", example: "--prefix ~/.venv", commands: ["kernel-install", "kernel-uninstall"], help: "install under this prefix" },
  { flag: "sys-prefix", type: "boolean", example: "--sys-prefix", commands: ["kernel-install"], help: "install under the Python's sys.prefix" },
  { flag: "name", type: "string", value: "N", default: "wanlab", example: "--name wanlab-gpu", commands: ["kernel-install", "kernel-uninstall"], help: "the kernel's name" },
  { flag: "jupyter", type: "string", value: "PATH", default: "jupyter on PATH", example: "--jupyter .venv/bin/jupyter", commands: ["kernel-install"], help: "the jupyter to ask where kernels go" },
  { flag: "no-jupyter", type: "boolean", example: "--no-jupyter --user", commands: ["kernel-install"], help: "do not ask jupyter (instead of --jupyter)" },
  { flag: "env", type: "string", value: "K=V", multiple: true, default: "none", example: "--env WANLAB_HOME=/data/wanlab", commands: ["kernel-install"], help: "an environment variable of the kernel (repeatable)" },
  { flag: "json", type: "boolean", example: "--json", commands: ["kernel-list", "doctor"], help: "the report as JSON" },
];

/** Every row: the generation parameters, the engine's options and each command's own. */
export const optionTable: readonly OptionRow[] = [...paramRows, ...commandRows, ...groupRows, ...computeRows];

/** What each command is: its usage head, what it does, in the order `wanlab help` lists them. */
export interface CommandInfo {
  /** The usage line's start: "generate", "inspect DIR". */
  head: string;
  /** The positional arguments parse() expects (names for its messages). */
  positionals: readonly string[];
  description: readonly string[];
}

export const commandTable: Readonly<Record<Command, CommandInfo>> = {
  demo: { head: "demo", positionals: [], description: ["the main job: a short video from the embedded default (a tiny generated model",
    "whose weights are random, so the video is noise-like), then the next three things to try;",
    "each run replaces its output (a regular file) and its .json"] },
  generate: { head: "generate", positionals: [], description: ["text to video (DiffSynth-Studio's defaults; without --model, the embedded tiny",
    "model, whose weights are random; a random seed is printed;",
    "outputs (the mp4, its .json, tensors, frames) are new paths or regular files, checked",
    "before the model loads in folders that exist; existing files are kept unless --overwrite;",
    "--devices defaults to auto: cuda:0 when a GPU is visible, else cpu;",
    "--budget 24G: the DiT blocks that fit beside this video stay on the GPU, the rest stream in;",
    "auto: the GPU's memory less 1.5 GB)"] },
  inspect: { head: "inspect DIR", positionals: ["DIR"], description: ["layout, files, architecture, parameters, dtypes, memory per device"] },
  "make-tiny": { head: "make-tiny OUT", positionals: ["OUT"], description: ["write a deterministic random-weight Wan2.1 T2V model"] },
  "bench-model": { head: "bench dit|vae|t5", positionals: [], description: ["time per forward, GFLOP/s, peak memory; PyTorch eager on DiffSynth's module as the peer"] },
  "bench-load": { head: "bench load DIR", positionals: ["DIR"], description: ["load time and resident memory, mmap vs copy (JSON)"] },
  "bench-parallel": { head: "bench parallel", positionals: [], description: ["every sequence-parallel layout on CPU ranks: bytes per step vs the analytic formula,",
    "compute/comm split, peak memory per rank, parity vs 1 rank (timings are no speed-up claim)"] },
  "bench-projection": { head: "bench projection", positionals: [], description: ["seconds per step and for the video's steps on 1 to 16 GPUs per layout: one rank's work",
    "measured on this device at its real shapes, the engine's collectives modelled over stated or",
    "measured links through its overlap schedule; speed-up, efficiency, the public anchors and the",
    "goals (JSON with --json; --html: the chart)"] },
  serve: { head: "serve", positionals: [], description: ["load a model once and serve a job queue over HTTP (prints 'listening on URL';",
    "--budget plans for 480x832x81 and refuses jobs predicted to exceed it; without it",
    "jobs predicted beyond the device's (or the host's) memory are refused;",
    "--budget none: no budget and no such guard)"] },
  "kernel-install": { head: "kernel install", positionals: [], description: ["install the Jupyter kernel \"wanlab (TypeScript)\" (tslab)"] },
  "kernel-uninstall": { head: "kernel uninstall", positionals: [], description: ["remove it"] },
  "kernel-list": { head: "kernel list", positionals: [], description: ["list the installed wanlab kernels"] },
  doctor: { head: "doctor", positionals: [], description: ["what this machine can run and where runs go (libtorch, CUDA devices checked by",
    "running each path, ffmpeg, the Jupyter kernel); exit 1 on a problem;",
    "with --devices or --rendezvous: the group's pre-flight check and its links instead (all-to-all,",
    "all-gather, send/recv: latency and bytes/s per message size)"] },
};

export const commands = Object.keys(commandTable) as Command[];

/** The rows of a command: the required ones, then its own, then those it shares with other
 * commands (the device group, compute placement), each in table order. */
export function rowsOf(command: Command): OptionRow[] {
  const rows = optionTable.filter((r) => r.flag !== undefined && r.commands.includes(command));
  const rank = (r: OptionRow) => (r.required ? 0 : r.commands.length === 1 ? 1 : 2);
  return rows.map((r, i) => [r, i] as const).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([r]) => r);
}

/** The row of `--flag` in `command`; throws on a flag the table does not give that command. */
export function rowOf(command: Command, flag: string): OptionRow {
  const r = optionTable.find((x) => x.flag === flag && x.commands.includes(command));
  if (!r) throw new Error(`the option table has no --${flag} for ${command}`);
  return r;
}

/** The range of an integer or number flag of `command`. */
export function rangeOf(command: Command, flag: string): readonly [number, number] {
  const r = rowOf(command, flag).range;
  if (!r) throw new Error(`--${flag} of ${command} has no range in the option table`);
  return r;
}

/** The allowed values of a choice flag of `command`. */
export function choicesOf<T extends string = string>(command: Command, flag: string): readonly T[] {
  const c = rowOf(command, flag).choices;
  if (!c) throw new Error(`--${flag} of ${command} has no choices in the option table`);
  return c as readonly T[];
}

/** The generation parameters' rows, by API key. */
export const paramRowsByKey: ReadonlyMap<string, OptionRow> = new Map(paramRows.map((r) => [r.key!, r]));

/** The engine's request field names (snake_case) to the API's keys. */
export const apiKeyOfEngineField: ReadonlyMap<string, string> = new Map(paramRows.filter((r) => r.engine).map((r) => [r.engine!, r.key!]));

/** The CLI's option rows that are API job options too (fps, crf), by key. */
export function jobOptionRow(key: "fps" | "crf"): OptionRow {
  return optionTable.find((r) => r.key === key && r.commands.includes("generate"))!;
}

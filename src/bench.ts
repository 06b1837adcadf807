// Model forward benchmarks: runs `wanlab-engine bench dit|vae|t5` in a child process (fresh
// process, so its memory figures are its own) and returns the engine's JSON report: our time,
// GFLOP/s and peak memory next to PyTorch eager running DiffSynth-Studio's module on the same
// weights and input ("peer"; null with "peer_reason" when no python/torch/DiffSynth is found).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { collect } from "./shared/process.js";

export type BenchKind = "dit" | "vae" | "t5";

export interface BenchModelOptions {
  dims?: "tiny" | "1.3B" | "14B";
  layers?: number;
  frames?: number;   // dit, vae: video frames (4k+1)
  height?: number;   // dit: multiple of 16; vae: multiple of 8
  width?: number;
  tokens?: number;   // t5
  iters?: number;
  warmup?: number;
  threads?: number;
  seed?: number;
  diffsynth?: string;  // DiffSynth-Studio source tree (else $DIFFSYNTH_DIR)
  python?: string;     // python with torch for the peer (else $WANLAB_PYTHON, else python3)
  peer?: boolean;      // false: ours only
  device?: string;     // cpu | cuda | cuda:N (CUDA: bf16 on weights drawn on the device, peer too)
  dtype?: "f32" | "bf16" | "f16";
  engine?: string;     // wanlab-engine binary (else native/build/wanlab-engine)
  env?: Record<string, string>;
}

/** The engine's report; see native/src/tools/bench_models.h for every field. */
export interface BenchSide {
  times_s: number[];
  median_s: number;
  min_s: number;
  gflops_per_s: number;
  peak_rss_bytes: number;
  peak_rss_delta_bytes: number;
  impl: string;
}
export interface BenchReport {
  bench: BenchKind;
  dims: string;
  arch: Record<string, unknown>;
  input: Record<string, unknown>;
  threads: number;
  flops: number;
  flops_formula: string;
  ours: BenchSide;
  peer: (BenchSide & { torch_version: string }) | null;
  peer_reason?: string;
  rel_l2_ours_vs_peer: number | null;
  ratio_peer_over_ours: number | null;
  [key: string]: unknown;
}

export const defaultEnginePath = fileURLToPath(new URL("../../native/build/wanlab-engine", import.meta.url));

/** The command line `wanlab-engine bench KIND ...` for these options. */
export function benchArgs(kind: BenchKind, o: BenchModelOptions = {}): string[] {
  const args = ["bench", kind];
  const num: [string, number | undefined][] = [
    ["--layers", o.layers], ["--frames", o.frames], ["--height", o.height], ["--width", o.width],
    ["--tokens", o.tokens], ["--iters", o.iters], ["--warmup", o.warmup], ["--threads", o.threads], ["--seed", o.seed],
  ];
  if (o.dims) args.push("--dims", o.dims);
  for (const [flag, v] of num) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 0) throw new Error(`benchModel: ${flag.slice(2)} must be a non-negative integer, got ${v}`);
    args.push(flag, String(v));
  }
  if (o.diffsynth) args.push("--diffsynth", o.diffsynth);
  if (o.python) args.push("--python", o.python);
  if (o.peer === false) args.push("--no-peer");
  if (o.device) args.push("--device", o.device);
  if (o.dtype) args.push("--dtype", o.dtype);
  return args;
}

/** Runs `wanlab-engine ARGS` (`engine`, else native/build/wanlab-engine) in a fresh process and
 * returns the JSON it prints; errors carry its stderr, or the command line and exit code. */
export async function engineJson<T>(args: readonly string[], options: { engine?: string; env?: Record<string, string> } = {}): Promise<T> {
  const engine = options.engine ?? defaultEnginePath;
  if (!existsSync(engine)) throw new Error(`${engine} is missing; run \`npm run build\``);
  const r = await collect(engine, args, { env: { ...process.env, ...options.env } });
  if (r.code !== 0) throw new Error(r.stderr.trim() || `wanlab-engine ${args.join(" ")} exited with ${r.code}`);
  try {
    return JSON.parse(r.stdout.toString()) as T;
  } catch (e) {
    throw new Error(`wanlab-engine ${args.join(" ")} printed no JSON: ${(e as Error).message}`);
  }
}

export function benchModel(kind: BenchKind, options: BenchModelOptions = {}): Promise<BenchReport> {
  return engineJson<BenchReport>(benchArgs(kind, options), options);
}

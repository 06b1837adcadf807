// The calibrated N-GPU projection: runs `wanlab-engine bench projection` (native/src/tools/
// bench_projection.h) in a child process and returns its JSON — one rank's work per layout
// measured on this device, the engine's collectives modelled over stated or measured links,
// seconds per step and for the video's steps, speed-up and efficiency, the public anchors and
// the goals — and draws it as the offline plotly page scripts/projection.mjs builds.
import { fileURLToPath, pathToFileURL } from "node:url";
import { engineJson } from "./bench.js";

export interface ProjectionOptions {
  dims?: "tiny" | "1.3B" | "14B";
  heads?: number;          // another head count at the same dim (the tiny model's Ulysses degrees)
  height?: number;         // pixels, a multiple of 16
  width?: number;
  frames?: number;         // 4k+1
  steps?: number;          // the video's steps: total_s = steps x step_s
  cfgScale?: number;       // not 1: two DiT passes per step unless CFG-parallel
  gpus?: number[];         // the GPU counts whose default layouts run: 1, 2, 4, 8, 16
  layouts?: string[];      // 1, uN, rN, uNrM, cfg, cfg-uN, cfg-uNrM, each optionally -shard
  shardWeights?: boolean;
  link?: "nvlink4" | "ib400" | "pcie4";  // within a node
  links?: string;          // instead: `wanlab doctor --devices ... --json`'s report
  interLink?: "nvlink4" | "ib400" | "pcie4";  // between nodes
  gpusPerNode?: number;
  blocks?: number;
  warmup?: number;
  iters?: number;
  device?: string;         // cpu | cuda | cuda:N
  dtype?: "f32" | "bf16" | "f16";
  threads?: number;
  seed?: number;
  measured?: string;       // a previous run's JSON, projected again without timing anything
  engine?: string;         // wanlab-engine binary (else native/build/wanlab-engine)
  env?: Record<string, string>;
}

/** One layout's row; native/src/tools/bench_projection.h documents every field. */
export interface ProjectionRow {
  layout: string;
  gpus: number;
  ulysses: number;
  ring: number;
  cfg_parallel: boolean;
  shard_weights: boolean;
  step_s: number;
  total_s: number;
  speedup: number;
  efficiency: number;
  exposed_comm_per_step_s: number;
  measured: Record<string, number | string>;
  modelled: Record<string, unknown>;
}

export interface ProjectionReport {
  bench: "projection";
  device: string;
  dims: string;
  video: { height: number; width: number; frames: number; tokens: number };
  steps: number;
  method: { measured: string; modelled: string };
  layouts: ProjectionRow[];
  skipped: { layout: string; gpus: number; reason: string }[];
  anchors: { source: string; gpus: number[]; total_s?: number[]; speedup?: number[] }[];
  goals: { goal: string; label: string; applies: boolean; value?: number; pass?: boolean; reason?: string }[];
  [key: string]: unknown;
}

/** The GPU counts the engine has default layouts for. */
export const projectionGpuCounts = [1, 2, 4, 8, 16] as const;

/** A layout name the engine takes: 1, uN, rN, uNrM, cfg, cfg-uN, cfg-rN, cfg-uNrM (N, M >= 2),
 * the sequence-parallel ones optionally ending in -shard. */
export function isProjectionLayout(name: string): boolean {
  if (name === "1" || name === "cfg") return true;
  const m = /^(?:cfg-)?(?:u(\d{1,4}))?(?:r(\d{1,4}))?(?:-shard)?$/.exec(name);
  if (!m || (m[1] === undefined && m[2] === undefined)) return false;
  return [m[1], m[2]].every((d) => d === undefined || Number(d) >= 2);
}

/** The command line `wanlab-engine bench projection ...` for these options. */
export function projectionArgs(o: ProjectionOptions = {}): string[] {
  const args = ["bench", "projection"];
  const num: [string, number | undefined][] = [
    ["--heads", o.heads], ["--height", o.height], ["--width", o.width], ["--frames", o.frames], ["--steps", o.steps],
    ["--gpus-per-node", o.gpusPerNode], ["--blocks", o.blocks], ["--warmup", o.warmup], ["--iters", o.iters],
    ["--threads", o.threads], ["--seed", o.seed],
  ];
  for (const [flag, v] of num) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`benchProjection: ${flag.slice(2)} must be a non-negative integer, got ${v}`);
    args.push(flag, String(v));
  }
  if (o.cfgScale !== undefined) {
    if (!Number.isFinite(o.cfgScale)) throw new Error(`benchProjection: cfgScale must be a finite number, got ${o.cfgScale}`);
    args.push("--cfg-scale", String(o.cfgScale));
  }
  const str: [string, string | undefined][] = [
    ["--dims", o.dims], ["--link", o.link], ["--links", o.links], ["--inter-link", o.interLink], ["--device", o.device],
    ["--dtype", o.dtype], ["--measured", o.measured],
  ];
  for (const [flag, v] of str) if (v !== undefined) args.push(flag, v);
  if (o.gpus?.length) args.push("--gpus", o.gpus.join(","));
  if (o.layouts?.length) args.push("--layouts", o.layouts.join(","));
  if (o.shardWeights) args.push("--shard-weights");
  return args;
}

/** Runs the projection in a fresh process; errors carry the engine's message. */
export function benchProjection(options: ProjectionOptions = {}): Promise<ProjectionReport> {
  return engineJson<ProjectionReport>(projectionArgs(options), options);
}

/** The chart's builder: dist/src/bench-projection.js -> scripts/projection.mjs. */
export const projectionScript = fileURLToPath(new URL("../../scripts/projection.mjs", import.meta.url));

/** The chart's page (scripts/projection.mjs's projectionHtml): plotly inlined, opens offline. */
export async function projectionHtml(report: ProjectionReport): Promise<string> {
  // A computed specifier: the script is plain JavaScript outside the TypeScript project.
  const m = (await import(pathToFileURL(projectionScript).href)) as { projectionHtml: (p: ProjectionReport) => string };
  return m.projectionHtml(report);
}

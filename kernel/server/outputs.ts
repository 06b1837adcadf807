// Job outputs on disk: each job's files are written into a hidden temporary directory and
// renamed into place as a whole, so OUTPUTS/[OUTPUT/]ID/ either holds every file, complete, or
// does not exist. Paths from requests are confined to the outputs directory.
import { createHash } from "node:crypto";
import { open as openFile, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { GenerateResult } from "../engine.js";
import { ParamError, type ResolvedParams } from "../params.js";

/** ResolvedParams as JSON: the seed as a decimal string (it can exceed 2^53). */
export type ResolvedJson = Omit<ResolvedParams, "seed"> & { seed: string };

export function paramsToJson(p: ResolvedParams): ResolvedJson {
  return { ...p, seed: p.seed.toString() };
}

/**
 * Resolves a request's `output` (a relative directory) inside `root`. Absolute paths, `..`
 * segments, backslashes, control characters and hidden names are refused, naming the field.
 */
export function confine(root: string, output: string | undefined): string {
  if (output === undefined) return root;
  const why =
    isAbsolute(output) ? "must be relative to the outputs directory" :
    /[\\\0-\x1f]/.test(output) ? "must not contain backslashes or control characters" :
    output.split("/").some((s) => s === ".." || s === "." || s.startsWith(".")) ? "must not contain '.', '..' or hidden segments" :
    undefined;
  const full = resolve(root, output);
  const rel = relative(root, full);
  if (why || rel.startsWith("..") || isAbsolute(rel) || full.split(sep).includes("..")) {
    throw new ParamError("output", `output ${why ?? "escapes the outputs directory"}: allowed is a relative directory such as 'sweeps/cfg', got '${output}'`);
  }
  return full;
}

/**
 * A cheap, stable identity for a model directory: names, sizes and the first MiB of every
 * file (enough to tell checkpoints apart without reading tens of GB).
 */
export async function modelFingerprint(dir: string): Promise<string> {
  const hash = createHash("sha256");
  async function walk(d: string): Promise<void> {
    const entries = (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const size = (await stat(p)).size;
        hash.update(`${relative(dir, p)}\0${size}\0`);
        const fh = await openFile(p, "r");
        try {
          const buf = Buffer.alloc(Math.min(size, 1 << 20));
          await fh.read(buf, 0, buf.length, 0);
          hash.update(buf);
        } finally {
          await fh.close();
        }
      }
    }
  }
  await walk(dir);
  return `sha256:${hash.digest("hex")}`;
}

export interface Manifest {
  producer: "wanlab";
  id: string;
  model: { dir: string; layout: string; fingerprint: string };
  engine: { wanlab: string; node: string; platform: string };
  params: ResolvedJson;
  video: { file: string; width: number; height: number; numFrames: number; fps: number; crf: number };
  tensors?: string;
  promptTokens: number;
  attempts: number;
  timings: { submitted: string; started: string; finished: string; queue_s: number; generate_s: number; write_s: number; engine: GenerateResult["timings"] };
  ranks: { rank: number; device: string; timings: GenerateResult["timings"] }[];
}

async function syncFile(path: string): Promise<void> {
  const fh = await openFile(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes video.mp4 (+ tensors.safetensors, already written by the engine into `tmpDir`) and
 * manifest.json into `tmpDir`, fsyncs them, and renames the directory to `finalDir`.
 */
export async function commitOutputs(
  tmpDir: string,
  finalDir: string,
  result: GenerateResult,
  manifest: (files: { video: string; tensors?: string }) => Manifest,
  options: { fps?: number; crf?: number; tensors: boolean },
): Promise<string[]> {
  const video = join(tmpDir, "video.mp4");
  await result.video.save(video, { fps: options.fps, crf: options.crf });
  const files = { video: join(finalDir, "video.mp4"), tensors: options.tensors ? join(finalDir, "tensors.safetensors") : undefined };
  await writeFile(join(tmpDir, "manifest.json"), JSON.stringify(manifest(files), null, 2) + "\n");
  const names = ["video.mp4", ...(options.tensors ? ["tensors.safetensors"] : []), "manifest.json"];
  for (const n of names) await syncFile(join(tmpDir, n));
  await rm(finalDir, { recursive: true, force: true }); // a half-finished earlier attempt cannot exist, but a stale one might
  await rename(tmpDir, finalDir);
  return names.map((n) => join(finalDir, n));
}

/** A fresh hidden scratch directory beside `finalDir` (one name per job: a retry clears the last try's). */
export async function scratchDir(finalDir: string): Promise<string> {
  const parent = resolve(finalDir, "..");
  await mkdir(parent, { recursive: true });
  const dir = join(parent, `.${finalDir.slice(parent.length + 1)}.tmp`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  return dir;
}

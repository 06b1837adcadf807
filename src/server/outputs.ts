// Job outputs on disk: each job's files are written into a hidden temporary directory and
// renamed into place as a whole, so OUTPUTS/[OUTPUT/]ID/ either holds every file, complete, or
// does not exist. Paths from requests are confined to the outputs directory: as text at submit
// (confine), by the real folders at submit (checkOutputFolders: no symbolic link, no file in the
// way), and when the job writes (openJobPlace): every folder below the outputs directory is
// opened with O_NOFOLLOW and the next one is reached through the open descriptor
// (/proc/PID/fd/N/NAME), so a symbolic link swapped in later is refused, not followed.
import { createHash } from "node:crypto";
import { constants, existsSync } from "node:fs";
import { lstat, open as openFile, mkdir, readdir, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { GenerateResult, ModelInfo } from "../engine.js";
import { ParamError, type ResolvedParams } from "../params.js";

/** ResolvedParams as JSON: the seed as a decimal string (it can exceed 2^53). */
export type ResolvedJson = Omit<ResolvedParams, "seed"> & { seed: string };

export function paramsToJson(p: ResolvedParams): ResolvedJson {
  return { ...p, seed: p.seed.toString() };
}

/** The longest folder name most filesystems take (NAME_MAX), in bytes. */
export const maxSegmentBytes = 255;
/** Names the server itself keeps in the outputs directory (and the runtime file's name). */
export const reservedNames = ["journal.jsonl", "server.json"];

/**
 * Resolves a request's `output` (a relative directory) inside `root`. Absolute paths, `..`
 * segments, backslashes, control characters, hidden names (the scratch folders are hidden),
 * the server's own file names and names longer than a folder name can be are refused, naming
 * the field.
 */
export function confine(root: string, output: string | undefined): string {
  if (output === undefined) return root;
  const segments = output.split("/");
  const long = segments.find((s) => Buffer.byteLength(s) > maxSegmentBytes);
  const reserved = segments.find((s) => reservedNames.includes(s) || s.startsWith("journal.jsonl."));
  const why =
    isAbsolute(output) ? "must be relative to the outputs directory" :
    /[\\\0-\x1f]/.test(output) ? "must not contain backslashes or control characters" :
    segments.some((s) => s === ".." || s === "." || s.startsWith(".")) ? "must not contain '.', '..' or hidden segments" :
    long !== undefined ? `has a segment of ${Buffer.byteLength(long)} bytes; a folder name can have at most ${maxSegmentBytes}` :
    reserved !== undefined ? `must not use the name '${reserved}', which the server keeps for itself` :
    undefined;
  const full = resolve(root, output);
  const rel = relative(root, full);
  if (why || rel.startsWith("..") || isAbsolute(rel) || full.split(sep).includes("..")) {
    throw new ParamError("output", `output ${why ?? "escapes the outputs directory"}: allowed is a relative directory such as 'sweeps/cfg', got '${output}'`);
  }
  return full;
}

/** The output folder's segments below the outputs directory ([] for the outputs directory). */
export function outputSegments(output: string | undefined): string[] {
  return output === undefined ? [] : output.split("/").filter((s) => s !== "");
}

const outputError = (output: string, why: string) =>
  new ParamError("output", `output ${why}: allowed is a folder inside the outputs directory such as 'sweeps/cfg', got '${output}'`);

/**
 * At submit: each folder of `output` that exists already must be a real folder, not a
 * symbolic link (which could lead out of the outputs directory) nor a file (which would make
 * the job fail after its compute). Throws a ParamError on "output" naming the segment.
 */
export async function checkOutputFolders(root: string, output: string | undefined): Promise<void> {
  let path = root;
  for (const seg of outputSegments(output)) {
    path = join(path, seg);
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // the rest is created when the job runs
      throw outputError(output!, `cannot be checked: ${(e as Error).message}`);
    }
    if (st.isSymbolicLink()) throw outputError(output!, `goes through '${relative(root, path)}', a symbolic link; outputs are written only into real folders inside the outputs directory`);
    if (!st.isDirectory()) throw outputError(output!, `goes through '${relative(root, path)}', which exists and is not a folder`);
  }
}

/** Whether folders can be reached through open descriptors (Linux /proc). */
const procFds = existsSync(`/proc/${process.pid}/fd`);
const viaFd = (h: FileHandle) => `/proc/${process.pid}/fd/${h.fd}`;
const dirFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Where a job writes: its scratch folder (a path through an open descriptor) and the logical
 * final folder; commit() renames the scratch folder into place. */
export interface JobPlace {
  /** The scratch folder, empty, reached through its open descriptor (engine and ffmpeg write here). */
  scratch: string;
  /** OUTPUTS/[OUTPUT/]ID, as clients see it. */
  finalDir: string;
  /** Renames the scratch folder to the final folder (replacing a stale one). */
  commit(): Promise<void>;
  /** Removes the scratch folder. */
  discard(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens OUTPUTS/OUTPUT (creating folders when `create`) one folder at a time with O_NOFOLLOW,
 * each name looked up in the folder opened before it: a symbolic link anywhere below the
 * outputs directory is refused (ELOOP), whenever it appeared. Without /proc (not Linux) it
 * falls back to lstat checks of each folder.
 */
async function openOutputFolder(root: string, output: string | undefined, create: boolean): Promise<FileHandle | undefined> {
  let h = await openFile(root, constants.O_RDONLY | constants.O_DIRECTORY);
  let logical = root;
  try {
    for (const seg of outputSegments(output)) {
      const path = procFds ? `${viaFd(h)}/${seg}` : join(logical, seg);
      logical = join(logical, seg);
      if (create) {
        try {
          await mkdir(path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
      }
      let next: FileHandle;
      try {
        if (!procFds && (await lstat(path)).isSymbolicLink()) throw Object.assign(new Error("symbolic link"), { code: "ELOOP" });
        next = await openFile(path, dirFlags);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && !create) {
          await h.close();
          return undefined;
        }
        // O_DIRECTORY|O_NOFOLLOW on a link answers ENOTDIR on Linux: lstat tells which it is
        const link = code === "ELOOP" || (code === "ENOTDIR" && (await lstat(path).then((st) => st.isSymbolicLink(), () => false)));
        const what = link ? "is a symbolic link" : code === "ENOTDIR" ? "is not a folder" : `cannot be opened (${(e as Error).message})`;
        throw new Error(`output folder ${logical} ${what}; the job's files are written only into real folders inside the outputs directory ${root}`);
      }
      await h.close();
      h = next;
    }
    return h;
  } catch (e) {
    await h.close().catch(() => undefined);
    throw e;
  }
}

/** Creates the job's folders and an empty scratch folder `.ID.tmp` beside OUTPUT/ID. */
export async function openJobPlace(root: string, output: string | undefined, id: string): Promise<JobPlace> {
  const parent = (await openOutputFolder(root, output, true))!;
  const finalDir = join(root, ...outputSegments(output), id);
  const at = (name: string) => (procFds ? `${viaFd(parent)}/${name}` : join(finalDir, "..", name));
  const tmpName = `.${id}.tmp`;
  let scratch: FileHandle | undefined;
  try {
    await rm(at(tmpName), { recursive: true, force: true }); // a retry clears the last try's
    await mkdir(at(tmpName)); // becomes the job's folder: the usual mode
    scratch = await openFile(at(tmpName), dirFlags);
  } catch (e) {
    await parent.close();
    throw e;
  }
  const close = async () => {
    await scratch?.close().catch(() => undefined);
    scratch = undefined;
    await parent.close().catch(() => undefined);
  };
  return {
    scratch: procFds ? viaFd(scratch) : at(tmpName),
    finalDir,
    async commit() {
      await rm(at(id), { recursive: true, force: true }); // a half-finished earlier attempt cannot exist, but a stale one might
      await rename(at(tmpName), at(id));
    },
    async discard() {
      await rm(at(tmpName), { recursive: true, force: true });
    },
    close,
  };
}

/** Removes a job's scratch folder `.ID.tmp` if one is left (a crash while it ran); never
 * follows a symbolic link to do so. */
export async function removeScratch(root: string, output: string | undefined, id: string): Promise<void> {
  const parent = await openOutputFolder(root, output, false).catch(() => undefined);
  if (!parent) return;
  try {
    await rm(procFds ? `${viaFd(parent)}/.${id}.tmp` : join(root, ...outputSegments(output), `.${id}.tmp`), { recursive: true, force: true });
  } finally {
    await parent.close();
  }
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
  /** The DiT's layout as the engine opened it (info.parallel), as the CLI's sidecar records it;
   * with layout "auto", the reason. */
  parallel?: ModelInfo["parallel"];
  promptTokens: number;
  attempts: number;
  timings: { submitted: string; started: string; finished: string; queue_s: number; generate_s: number; write_s: number; engine: GenerateResult["timings"] };
  ranks: { rank: number; device: string; timings: GenerateResult["timings"] }[];
}

async function syncFile(path: string): Promise<void> {
  const fh = await openFile(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes video.mp4 (+ tensors.safetensors, already written by the engine into the scratch
 * folder) and manifest.json into the job's scratch folder, fsyncs them, and renames the folder
 * to its final place.
 */
export async function commitOutputs(
  place: JobPlace,
  result: GenerateResult,
  manifest: (files: { video: string; tensors?: string }) => Manifest,
  options: { fps?: number; crf?: number; tensors: boolean },
): Promise<string[]> {
  const tmpDir = place.scratch;
  const finalDir = place.finalDir;
  await result.video.save(join(tmpDir, "video.mp4"), { fps: options.fps, crf: options.crf });
  const files = { video: join(finalDir, "video.mp4"), tensors: options.tensors ? join(finalDir, "tensors.safetensors") : undefined };
  // "wx": O_CREAT|O_EXCL, which never follows or reuses what is there
  await writeFile(join(tmpDir, "manifest.json"), JSON.stringify(manifest(files), null, 2) + "\n", { flag: "wx" });
  const names = ["video.mp4", ...(options.tensors ? ["tensors.safetensors"] : []), "manifest.json"];
  for (const n of names) await syncFile(join(tmpDir, n));
  await place.commit();
  return names.map((n) => join(finalDir, n));
}

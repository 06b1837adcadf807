// MP4 and PNG output. ffmpeg is found, in order, at $FFMPEG_PATH, in the optional `ffmpeg-static`
// package, and as `ffmpeg` on PATH; the first that answers `-version` is used.
import { spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { deflateSync } from "node:zlib";
import { collect, type Collected } from "../shared/process.js";
import { checkOutputDir, checkOutputFile, commitFile, OutputError, tempBeside } from "../fs/safe-output.js";

export type FfmpegSource = "FFMPEG_PATH" | "ffmpeg-static" | "PATH";

export interface Ffmpeg {
  path: string;
  source: FfmpegSource;
  /** First line of `ffmpeg -version`. */
  version: string;
}

async function probe(path: string, env: NodeJS.ProcessEnv): Promise<string> {
  let r: Collected;
  try {
    r = await collect(path, ["-hide_banner", "-version"], { env });
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : (e as Error).message);
  }
  const first = r.stdout.toString().split("\n")[0]!.trim();
  if (r.code === 0 && first.startsWith("ffmpeg version")) return first;
  throw new Error(r.code === 0 ? `'-version' printed '${first}', not 'ffmpeg version …'` : `'-version' exited with ${r.code}`);
}

async function ffmpegStatic(): Promise<string | undefined> {
  const name = "ffmpeg-static"; // a variable: the package is optional and has no types here
  try {
    const mod = (await import(name)) as { default?: unknown };
    return typeof mod.default === "string" ? mod.default : undefined;
  } catch {
    return undefined;
  }
}

/** Finds a working ffmpeg; the error says what each of the three places gave. */
export async function findFfmpeg(env: NodeJS.ProcessEnv = process.env): Promise<Ffmpeg> {
  const tried: string[] = [];
  const candidates: [FfmpegSource, () => Promise<string | undefined>][] = [
    ["FFMPEG_PATH", async () => env.FFMPEG_PATH || undefined],
    ["ffmpeg-static", ffmpegStatic],
    ["PATH", async () => "ffmpeg"],
  ];
  for (const [source, where] of candidates) {
    const path = await where();
    if (path === undefined) {
      tried.push(source === "FFMPEG_PATH" ? "FFMPEG_PATH is not set" : "the ffmpeg-static package is not installed");
      continue;
    }
    try {
      return { path, source, version: await probe(path, env) };
    } catch (e) {
      tried.push(`${source === "PATH" ? "ffmpeg on PATH" : `${source} (${path})`}: ${(e as Error).message}`);
    }
  }
  throw new Error(`ffmpeg not found: ${tried.join("; ")}. Set FFMPEG_PATH, \`npm install ffmpeg-static\`, or install ffmpeg on PATH`);
}

/**
 * imageio-ffmpeg's mapping of a 0-10 `quality` to libx264's CRF, which DiffSynth's save_video
 * uses: crf = int((1 - quality / 10) * 51). quality 9 (save_video's default) → 5, 5 → 25.
 */
export function crfFromQuality(quality: number): number {
  if (!(quality >= 0 && quality <= 10)) throw new Error(`quality must be between 0 and 10, got ${quality}`);
  return Math.trunc((1 - quality / 10) * 51);
}

export interface Mp4Options {
  width: number;
  height: number;
  /** Number of frames in the buffer. */
  frames: number;
  /** Frames per second; DiffSynth's Wan examples save at 15. */
  fps?: number;
  /** libx264 CRF, 0-51; default 5, what DiffSynth's save_video default (quality 9) gives. */
  crf?: number;
  out: string;
  /** Environment to find ffmpeg in (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** An existing regular file at `out` is replaced (default true); anything else never is. */
  overwrite?: boolean;
  /** The option that named `out`, for errors (default "writeMp4: out"). */
  flag?: string;
}

function checkFrames(fn: string, frames: Uint8Array, o: { width: number; height: number; frames: number }): void {
  for (const name of ["width", "height", "frames"] as const) {
    if (!Number.isInteger(o[name]) || o[name] < 1) throw new Error(`${fn}: ${name} must be a positive integer, got ${o[name]}`);
  }
  const need = o.frames * o.height * o.width * 3;
  if (frames.length !== need) {
    throw new Error(`${fn}: frames has ${frames.length} bytes; [${o.frames}, ${o.height}, ${o.width}, 3] RGB needs ${need}`);
  }
}


/**
 * Encodes [F, H, W, 3] RGB bytes to an H.264 yuv420p MP4 with the index up front (+faststart),
 * like DiffSynth's save_video (imageio-ffmpeg: libx264, yuv420p, rawvideo rgb24 on stdin). The
 * file is written aside and renamed, so `out` is either the old file or the whole new one; only a
 * regular file (or a link to one, written through) is ever replaced: a device node, FIFO, socket
 * or folder at `out` is refused before encoding and again at the rename (src/fs/safe-output.ts).
 * yuv420p needs even sizes; imageio would rescale odd ones, this refuses them.
 */
export async function writeMp4(frames: Uint8Array, options: Mp4Options): Promise<Ffmpeg> {
  const { width, height, frames: count, fps = 15, crf = 5, env, overwrite = true, flag = "writeMp4: out" } = options;
  checkFrames("writeMp4", frames, options);
  if (width % 2 || height % 2) throw new Error(`writeMp4: width and height must be even for yuv420p, got ${width}×${height}`);
  if (!(fps > 0 && fps <= 1000)) throw new Error(`writeMp4: fps must be in (0, 1000], got ${fps}`);
  if (!Number.isInteger(crf) || crf < 0 || crf > 51) throw new Error(`writeMp4: crf must be an integer from 0 to 51, got ${crf}`);
  const ffmpeg = await findFfmpeg(env);
  await mkdir(dirname(options.out), { recursive: true });
  const out = checkOutputFile(options.out, { flag, overwrite });
  const tmp = tempBeside(out);
  const args = [
    "-hide_banner", "-loglevel", "error", "-y",
    "-f", "rawvideo", "-vcodec", "rawvideo", "-pix_fmt", "rgb24", "-s", `${width}x${height}`, "-r", String(fps), "-i", "-",
    "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", String(crf), "-movflags", "+faststart", "-f", "mp4", tmp,
  ];
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(ffmpeg.path, args, { env: env ?? process.env, stdio: ["pipe", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += d));
      child.on("error", reject);
      // ffmpeg exiting early closes the pipe; its stderr says why, so EPIPE itself is not reported
      child.stdin.on("error", () => {});
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`writeMp4: ffmpeg (${ffmpeg.path}) exited with ${code}: ${err.trim()}`))));
      const frameBytes = width * height * 3;
      let f = 0;
      const pump = (): void => {
        while (f < count) {
          const ok = child.stdin.write(frames.subarray(f * frameBytes, (f + 1) * frameBytes));
          f++;
          if (!ok) return void child.stdin.once("drain", pump);
        }
        child.stdin.end();
      };
      pump();
    });
    await commitFile(tmp, out, { flag, overwrite });
  } finally {
    await rm(tmp, { force: true });
  }
  return ffmpeg;
}

// PNG, written here rather than by ffmpeg so frames need nothing installed.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** One RGB frame ([H, W, 3] bytes) as an 8-bit truecolour PNG. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, truecolour, deflate, no filter method, no interlace
  const raw = Buffer.alloc(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

export interface PngFramesOptions {
  width: number;
  height: number;
  frames: number;
  /** Directory for the frames, named 0.png, 1.png, … as DiffSynth's save_frames names them. */
  dir: string;
  /** Existing regular files among the frames are replaced (default true); anything else never is. */
  overwrite?: boolean;
  /** The option that named `dir`, for errors (default "writePngFrames: dir"). */
  flag?: string;
}

/** Writes [F, H, W, 3] RGB bytes as one PNG per frame (each written aside and renamed; only a
 * regular file is ever replaced); returns the paths. */
export async function writePngFrames(frames: Uint8Array, options: PngFramesOptions): Promise<string[]> {
  const { width, height, frames: count, overwrite = true, flag = "writePngFrames: dir" } = options;
  checkFrames("writePngFrames", frames, options);
  await mkdir(options.dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    throw e.code === "EEXIST" || e.code === "ENOTDIR" ? new OutputError(flag, `${flag} ${options.dir} is not a folder`) : e;
  });
  const dir = checkOutputDir(options.dir, { flag, overwrite });
  const paths: string[] = [];
  const frameBytes = width * height * 3;
  for (let f = 0; f < count; f++) {
    const path = checkOutputFile(join(dir, `${f}.png`), { flag, overwrite });
    const tmp = tempBeside(path);
    try {
      await writeFile(tmp, encodePng(frames.subarray(f * frameBytes, (f + 1) * frameBytes), width, height), { flag: "wx" });
      await commitFile(tmp, path, { flag, overwrite });
    } finally {
      await rm(tmp, { force: true });
    }
    paths.push(path);
  }
  return paths;
}

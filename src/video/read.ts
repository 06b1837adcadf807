// Input videos for video-to-video: any file ffmpeg reads, its first frames scaled to the
// generation's size, as the float32 [3, F, H, W] tensor DiffSynth's preprocess_video makes
// (each byte x as x * (2 / 255) - 1, in float32).
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ParamError } from "../params.js";
import { collect } from "../shared/process.js";
import { findFfmpeg } from "./ffmpeg.js";

export interface InputVideo {
  /** [3, numFrames, height, width] float32 in [-1, 1], channel-major. */
  data: Float32Array;
  shape: [3, number, number, number];
}

/** RGB bytes [F, H, W, 3] -> DiffSynth's preprocessed [3, F, H, W] float32. */
export function preprocessFrames(rgb: Uint8Array, numFrames: number, height: number, width: number): InputVideo {
  const plane = height * width, n = numFrames * plane;
  if (rgb.length !== n * 3) throw new Error(`preprocessFrames: ${rgb.length} bytes, expected ${n * 3}`);
  const data = new Float32Array(3 * n);
  const scale = Math.fround(2 / 255);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < 3; c++) data[c * n + i] = Math.fround(Math.fround(rgb[i * 3 + c]! * scale) - 1);
  return { data, shape: [3, numFrames, height, width] };
}

/** The absolute path of an input video that exists as a regular file, or a ParamError naming it
 * (the server checks this at submit, before queueing). */
export function checkInputVideoPath(path: string): string {
  const file = resolve(path);
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st) throw new ParamError("inputVideo", `inputVideo ${file} does not exist`);
  if (!st.isFile()) throw new ParamError("inputVideo", `inputVideo ${file} is not a regular file`);
  return file;
}

/**
 * The first `numFrames` frames of the video at `path`, scaled to width × height (bicubic, the
 * aspect ratio not kept: crop beforehand to keep it). Errors name the file: missing, not a
 * regular file, unreadable by ffmpeg, or shorter than numFrames.
 */
export async function readInputVideo(path: string, numFrames: number, height: number, width: number): Promise<InputVideo> {
  const file = checkInputVideoPath(path);
  const ffmpeg = await findFfmpeg();
  // "file:" keeps ffmpeg to the local file whatever the name looks like (no URLs, no protocols).
  const args = ["-v", "error", "-nostdin", "-i", `file:${file}`, "-frames:v", String(numFrames),
    "-vf", `scale=${width}:${height}:flags=bicubic`, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"];
  const frameBytes = width * height * 3;
  const r = await collect(ffmpeg.path, args);
  if (r.code !== 0) throw new ParamError("inputVideo", `inputVideo ${file}: ffmpeg could not read it: ${r.stderr.trim().split("\n").at(-1)}`);
  const rgb = new Uint8Array(r.stdout);
  const frames = Math.floor(rgb.length / frameBytes);
  if (frames < numFrames)
    throw new ParamError("inputVideo", `inputVideo ${file} has ${frames} frames; numFrames needs ${numFrames} (give numFrames <= ${frames}, 4k+1)`);
  return preprocessFrames(rgb.subarray(0, numFrames * frameBytes), numFrames, height, width);
}

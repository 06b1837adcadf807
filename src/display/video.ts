// A video as notebook output: an inline H.264 mp4 in a <video> (text/html) plus a GIF of the same
// frames (image/gif) in one bundle, so viewers that hide HTML (untrusted notebooks, GitHub, some
// exporters) still show it. Past a size limit the mp4 is written beside the notebook and linked.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { collect } from "../shared/process.js";
import { encodePng, findFfmpeg, writeMp4 } from "../video/ffmpeg.js";
import { escapeHtml, makeDisplayable, type Displayable, type MimeBundle } from "./mime.js";

export interface VideoFrames {
  /** [numFrames, height, width, 3] RGB bytes. */
  frames: Uint8Array;
  width: number;
  height: number;
  numFrames: number;
  fps: number;
}

/** Settings for every video shown; change them in a cell (`wan.displayConfig.maxInlineBytes = …`). */
export const displayConfig = {
  /** Larger mp4s are written to `outputDir` and linked instead of embedded as base64. */
  maxInlineBytes: Number(process.env.WANLAB_INLINE_MAX_BYTES ?? 8 * 1024 * 1024),
  /** Where linked videos go, relative to the kernel's directory (the notebook's). */
  outputDir: process.env.WANLAB_OUTPUT_DIR ?? "wanlab-outputs",
  /** Largest side of the GIF fallback in pixels. */
  gifMaxSide: 256,
};

export interface EncodedVideo {
  mp4: Buffer;
  gif: Buffer;
  poster: Buffer;
}

/** ffmpeg `args` with `input` on stdin; its stdout. */
async function run(path: string, args: string[], input: Uint8Array): Promise<Buffer> {
  const r = await collect(path, args, { input });
  if (r.code !== 0) throw new Error(`ffmpeg exited with ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A looping GIF (palette per clip), scaled so its longer side is at most gifMaxSide. */
export async function encodeGif(v: VideoFrames, maxSide = displayConfig.gifMaxSide): Promise<Buffer> {
  const ffmpeg = await findFfmpeg();
  const scale = Math.min(1, maxSide / Math.max(v.width, v.height));
  const w = Math.max(2, Math.round((v.width * scale) / 2) * 2);
  const h = Math.max(2, Math.round((v.height * scale) / 2) * 2);
  return run(ffmpeg.path, [
    "-hide_banner", "-loglevel", "error",
    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${v.width}x${v.height}`, "-r", String(v.fps), "-i", "-",
    "-vf", `scale=${w}:${h}:flags=neighbor,split[a][b];[a]palettegen[p];[b][p]paletteuse`,
    "-loop", "0", "-f", "gif", "pipe:1",
  ], v.frames);
}

/** The mp4 (same encoder and settings as video.save()), the GIF fallback and a PNG poster (frame 0). */
export async function encodeVideo(v: VideoFrames): Promise<EncodedVideo> {
  const tmp = join(tmpdir(), `wanlab-${randomBytes(6).toString("hex")}.mp4`);
  try {
    await writeMp4(v.frames, { width: v.width, height: v.height, frames: v.numFrames, fps: v.fps, out: tmp });
    const [mp4, gif] = await Promise.all([readFile(tmp), encodeGif(v)]);
    const poster = encodePng(v.frames.subarray(0, v.width * v.height * 3), v.width, v.height);
    return { mp4, gif, poster };
  } finally {
    await rm(tmp, { force: true });
  }
}

/** A PNG that shows itself as an image when it is a cell's value; still a Buffer of the PNG bytes. */
export type Png = Buffer & Displayable;

/**
 * Frames side by side in one PNG (every `every`-th frame): a still summary of a clip. Takes the
 * video or the result holding it; as a cell's value it shows as the image.
 */
export function frameStrip(x: VideoFrames | { video: VideoFrames }, every = 1): Png {
  const v = "video" in x ? x.video : x;
  if (!(Number.isInteger(every) && every >= 1)) throw new RangeError(`frameStrip: every must be an integer >= 1, got ${every}`);
  const picks = [];
  for (let i = 0; i < v.numFrames; i += every) picks.push(i);
  const W = v.width * picks.length;
  const out = new Uint8Array(W * v.height * 3);
  picks.forEach((f, k) => {
    for (let y = 0; y < v.height; y++) {
      const src = ((f * v.height + y) * v.width) * 3;
      out.set(v.frames.subarray(src, src + v.width * 3), (y * W + k * v.width) * 3);
    }
  });
  const png = encodePng(out, W, v.height);
  const text = `frame strip: ${picks.length} frame${picks.length === 1 ? "" : "s"} of ${v.width}×${v.height}${every > 1 ? ` (every ${every}th)` : ""}`;
  return makeDisplayable(png, () => ({ "image/png": png.toString("base64"), "text/plain": text }), () => text);
}

/** The output bundle for an encoded video; `label` goes in the caption and alt text. */
export async function videoBundle(v: VideoFrames, enc: EncodedVideo, label: string): Promise<MimeBundle> {
  const size = `${v.width}×${v.height}, ${v.numFrames} frames @ ${v.fps} fps`;
  const text = `Video ${size}${label ? ` — ${label}` : ""}`;
  let src: string;
  let link = "";
  if (enc.mp4.length <= displayConfig.maxInlineBytes) {
    src = `data:video/mp4;base64,${enc.mp4.toString("base64")}`;
  } else {
    const dir = resolve(displayConfig.outputDir);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${randomBytes(6).toString("hex")}.mp4`);
    await writeFile(file, enc.mp4);
    src = relative(process.cwd(), file);
    link = ` · <a href="${escapeHtml(src)}" target="_blank">${escapeHtml(src)}</a> (${(enc.mp4.length / 1e6).toFixed(1)} MB, over displayConfig.maxInlineBytes)`;
  }
  const html =
    `<figure style="margin:0">` +
    `<video controls loop autoplay muted playsinline width="${Math.max(v.width, 256)}" poster="data:image/png;base64,${enc.poster.toString("base64")}" src="${src}"></video>` +
    `<figcaption style="font:12px sans-serif;color:#555">${escapeHtml(text)}${link}</figcaption></figure>`;
  return { "text/html": html, "image/gif": enc.gif.toString("base64"), "text/plain": text };
}

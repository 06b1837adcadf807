// Several videos as one notebook output: grid() lays them out in rows and columns, each tile
// captioned by its label (by default the parameters that differ between them); compare() puts two
// players side by side. Both are built synchronously from frames already in memory, so they work
// as a cell's value: the HTML shows the animated GIF (or the mp4 player) of every video the
// notebook lab already encoded and the first frame of any other; image/png carries the first
// frames as one sheet for viewers without HTML.
import { encodePng } from "../video/ffmpeg.js";
import { escapeHtml, makeDisplayable, type Displayable, type MimeBundle } from "./mime.js";
import type { EncodedVideo, VideoFrames } from "./video.js";

/** A video (frames), or something holding one: a generation's result. */
export type VideoLike = VideoFrames | { video: VideoFrames; params?: object; encoded?: EncodedVideo };

export interface GridOptions {
  /** Rows and columns; give one and the other follows from the count (default: up to 4 columns). */
  rows?: number;
  cols?: number;
  /** One caption per video, in order; default: the parameters that differ between the results. */
  labels?: readonly string[];
  /** A heading above the grid. */
  title?: string;
  /** Tiles are scaled up (by a whole factor, pixels kept sharp) until their longer side reaches this; default 128. */
  tileSize?: number;
}

export interface Grid extends Displayable {
  rows: number;
  cols: number;
  labels: string[];
  /** The first frames as one sheet (PNG bytes), tiles scaled as shown, in row-major order. */
  png: Buffer;
}

const framesOf = (x: VideoLike): VideoFrames => ("video" in x ? x.video : x);
const encodedOf = (x: VideoLike): EncodedVideo | undefined =>
  (x as { encoded?: EncodedVideo }).encoded ?? ("video" in x ? (x.video as { encoded?: EncodedVideo }).encoded : undefined);
const paramsOf = (x: VideoLike): Record<string, unknown> | undefined => ("params" in x && x.params ? (x.params as Record<string, unknown>) : undefined);

/** True for frames or a result holding them: what grid() and compare() take. */
export function isVideoLike(x: unknown): x is VideoLike {
  if (typeof x !== "object" || x === null) return false;
  const v = "video" in x ? (x as { video: unknown }).video : x;
  return typeof v === "object" && v !== null && (v as VideoFrames).frames instanceof Uint8Array && Number.isInteger((v as VideoFrames).width) && Number.isInteger((v as VideoFrames).numFrames);
}

/** How a parameter reads in a caption. */
const shortNames: Record<string, string> = { cfgScale: "cfg", sigmaShift: "shift", numInferenceSteps: "steps", numFrames: "frames", negativePrompt: "negative", teaCacheL1Thresh: "teacache", denoisingStrength: "strength" };

function paramText(key: string, v: unknown): string {
  const s = typeof v === "string" ? (v.length > 24 ? `"${v.slice(0, 23)}…"` : `"${v}"`) : Array.isArray(v) ? v.join("×") : String(v);
  return `${shortNames[key] ?? key} ${s}`;
}

/** Per video, the parameters whose values differ across `items` ("cfg 3, seed 1"); "#i" without any. */
export function varyingLabels(items: readonly VideoLike[]): string[] {
  const params = items.map(paramsOf);
  const keys = [...new Set(params.flatMap((p) => (p ? Object.keys(p) : [])))].filter((k) => {
    const values = new Set(params.map((p) => String(p?.[k])));
    return values.size > 1;
  });
  return items.map((_, i) => {
    const p = params[i];
    const parts = p ? keys.filter((k) => k in p).map((k) => paramText(k, p[k])) : [];
    return parts.length ? parts.join(", ") : `#${i + 1}`;
  });
}

function shape(n: number, rows?: number, cols?: number): { rows: number; cols: number } {
  for (const [name, v] of [["rows", rows], ["cols", cols]] as const)
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new RangeError(`grid: ${name} must be an integer >= 1, got ${v}`);
  if (rows && cols) {
    if (rows * cols < n) throw new RangeError(`grid: rows × cols = ${rows} × ${cols} holds ${rows * cols} videos, got ${n}; leave one out to fit them all`);
    return { rows, cols };
  }
  if (rows) return { rows, cols: Math.ceil(n / rows) };
  const c = cols ?? Math.min(n, 4);
  return { rows: Math.ceil(n / c), cols: c };
}

/** Frame 0 of `v` scaled up by `k` (nearest neighbour), written into `out` (width W) at (x0, y0). */
function blit(out: Uint8Array, W: number, v: VideoFrames, k: number, x0: number, y0: number): void {
  for (let y = 0; y < v.height * k; y++) {
    const src = Math.floor(y / k) * v.width * 3;
    const dst = ((y0 + y) * W + x0) * 3;
    for (let x = 0; x < v.width * k; x++) {
      const s = src + Math.floor(x / k) * 3;
      out[dst + x * 3] = v.frames[s]!;
      out[dst + x * 3 + 1] = v.frames[s + 1]!;
      out[dst + x * 3 + 2] = v.frames[s + 2]!;
    }
  }
}

const scaleFor = (v: VideoFrames, tileSize: number) => Math.max(1, Math.floor(tileSize / Math.max(v.width, v.height)));

/** The first frames in rows × cols tiles with a 4-pixel white gap; tiles as large as the largest video. */
function sheet(videos: VideoFrames[], rows: number, cols: number, tileSize: number): Buffer {
  const gap = 4;
  const tw = Math.max(...videos.map((v) => v.width * scaleFor(v, tileSize)));
  const th = Math.max(...videos.map((v) => v.height * scaleFor(v, tileSize)));
  const W = cols * tw + (cols - 1) * gap, H = rows * th + (rows - 1) * gap;
  const out = new Uint8Array(W * H * 3).fill(255);
  videos.forEach((v, i) => blit(out, W, v, scaleFor(v, tileSize), (i % cols) * (tw + gap), Math.floor(i / cols) * (th + gap)));
  return encodePng(out, W, H);
}

/** The tile's picture: the lab's GIF when it has one (animated), else frame 0 as a PNG. */
function tileImg(x: VideoLike, width: number, alt: string): string {
  const v = framesOf(x);
  const enc = encodedOf(x);
  const src = enc ? `data:image/gif;base64,${enc.gif.toString("base64")}` : `data:image/png;base64,${encodePng(v.frames.subarray(0, v.width * v.height * 3), v.width, v.height).toString("base64")}`;
  return `<img src="${src}" width="${width}" alt="${escapeHtml(alt)}" style="image-rendering:pixelated;display:block">`;
}

const caption = (s: string) => `<figcaption style="font:12px sans-serif;color:#333;margin-top:2px;max-width:100%">${escapeHtml(s)}</figcaption>`;

/**
 * Videos in a labelled grid: `grid(results, { cols: 3 })`, `grid(runs.map((x) => x.r), { rows: 4,
 * labels })`. Without labels each tile is captioned by the parameters that differ across the set.
 */
export function grid(items: readonly VideoLike[], options: GridOptions = {}): Grid {
  if (!Array.isArray(items) || items.length === 0) throw new TypeError("grid: give an array of one or more videos or results");
  items.forEach((x, i) => {
    if (!isVideoLike(x)) throw new TypeError(`grid: item ${i} is not a video or a generation result (it needs frames, width, height and numFrames)`);
  });
  if (options.labels && options.labels.length !== items.length) throw new RangeError(`grid: labels has ${options.labels.length} entries for ${items.length} videos; give one per video`);
  const { rows, cols } = shape(items.length, options.rows, options.cols);
  const labels = options.labels ? options.labels.map(String) : varyingLabels(items);
  const tileSize = options.tileSize ?? 128;
  const videos = items.map(framesOf);
  const png = sheet(videos, rows, cols, tileSize);
  const bundle = (): MimeBundle => {
    const cells = items.map((x, i) => {
      const v = videos[i]!;
      return `<figure style="margin:0">${tileImg(x, v.width * scaleFor(v, tileSize), labels[i]!)}${caption(labels[i]!)}</figure>`;
    });
    const html =
      (options.title ? `<div style="font:bold 13px sans-serif;margin:4px 0">${escapeHtml(options.title)}</div>` : "") +
      `<div style="display:grid;grid-template-columns:repeat(${cols},max-content);gap:8px 12px;align-items:start">${cells.join("")}</div>`;
    return { "text/html": html, "image/png": png.toString("base64"), "text/plain": text() };
  };
  const text = () => {
    const lines = [`${options.title ? `${options.title}: ` : ""}grid of ${items.length} video${items.length === 1 ? "" : "s"}, ${rows} × ${cols}`];
    for (let r = 0; r < rows; r++) lines.push("  " + labels.slice(r * cols, (r + 1) * cols).join(" | "));
    return lines.join("\n");
  };
  return makeDisplayable({ rows, cols, labels, png }, bundle, text) as Grid;
}

/** The player of one video in compare(): the lab's mp4 when it has one, else its GIF or frame 0. */
function player(x: VideoLike, label: string): string {
  const v = framesOf(x);
  const enc = encodedOf(x);
  const width = v.width * scaleFor(v, 256);
  if (!enc) return tileImg(x, width, label);
  const poster = `data:image/png;base64,${enc.poster.toString("base64")}`;
  return `<video controls loop autoplay muted playsinline width="${width}" poster="${poster}" src="data:video/mp4;base64,${enc.mp4.toString("base64")}" style="image-rendering:pixelated;display:block"></video>`;
}

/**
 * Two videos side by side with their captions (by default the parameters that differ):
 * `compare(a, b)`, `compare(a, b, { labels: ["cfg 1", "cfg 5"] })`.
 */
export function compare(a: VideoLike, b: VideoLike, options: { labels?: readonly [string, string]; title?: string } = {}): Grid {
  for (const [name, x] of [["a", a], ["b", b]] as const)
    if (!isVideoLike(x)) throw new TypeError(`compare: ${name} is not a video or a generation result`);
  const g = grid([a, b], { cols: 2, labels: options.labels, title: options.title, tileSize: 256 });
  const bundle = (): MimeBundle => {
    const side = [a, b].map((x, i) => `<figure style="margin:0">${player(x, g.labels[i]!)}${caption(g.labels[i]!)}</figure>`);
    const html =
      (options.title ? `<div style="font:bold 13px sans-serif;margin:4px 0">${escapeHtml(options.title)}</div>` : "") +
      `<div style="display:flex;gap:12px;align-items:flex-start">${side.join("")}</div>`;
    return { "text/html": html, "image/png": g.png.toString("base64"), "text/plain": `compare: ${g.labels[0]} | ${g.labels[1]}` };
  };
  return makeDisplayable({ rows: 1, cols: 2, labels: g.labels, png: g.png }, bundle, () => `compare: ${g.labels[0]} | ${g.labels[1]}`) as Grid;
}

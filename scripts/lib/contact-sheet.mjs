// A labelled contact sheet: the first frame of each video, scaled to one tile width, with its
// label (the parameters that tell the runs apart) in a white band under it, tiled left to right,
// top to bottom in the order given. ffmpeg draws the text (drawtext, the system's sans font).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "zx";

/** Tile width in pixels: small videos are scaled up (nearest neighbour) so labels fit. */
export const tileWidth = 256;
const fontSize = 14;
const lineHeight = 18;

/** Splits `text` into lines of at most `chars` characters: between its ", "-separated parts
 * where they fit ("seed 42" stays whole), else between words, else anywhere. */
export function wrapLabel(text, chars = Math.floor(tileWidth / (fontSize * 0.6))) {
  const parts = text.split(", ").map((p, i, all) => (i < all.length - 1 ? `${p},` : p));
  const pieces = parts.flatMap((p) => (p.length <= chars ? [p] : p.split(" ").flatMap((w) => w.match(new RegExp(`.{1,${chars}}`, "g")) ?? [])));
  const lines = [];
  let line = "";
  for (const word of pieces) {
    if (line && line.length + 1 + word.length > chars) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

/**
 * Writes `sheet` (a PNG) from `tiles` ([{ file, label }], videos ffmpeg reads). Returns its
 * layout: { cols, rows, tileWidth, tileHeight, labelLines }.
 */
export async function contactSheet(tiles, sheet) {
  const tmp = mkdtempSync(join(tmpdir(), "wanlab-sheet-"));
  try {
    const labels = tiles.map((t) => wrapLabel(t.label));
    const labelLines = Math.max(1, ...labels.map((l) => l.length));
    const band = labelLines * lineHeight + 6;
    for (const [i, t] of tiles.entries()) {
      const text = join(tmp, `${i}.txt`);
      writeFileSync(text, labels[i].join("\n"));
      const vf = [`scale=${tileWidth}:-2:flags=neighbor`, `pad=iw:ih+${band}:0:0:color=white`,
        `drawtext=textfile=${text}:expansion=none:font=Sans:fontsize=${fontSize}:line_spacing=${lineHeight - fontSize}:fontcolor=black:x=4:y=h-${band - 4}`].join(",");
      await $`ffmpeg -hide_banner -loglevel error -y -i ${t.file} -frames:v 1 -vf ${vf} ${join(tmp, `${String(i).padStart(4, "0")}.png`)}`;
    }
    const cols = Math.ceil(Math.sqrt(tiles.length));
    const rows = Math.ceil(tiles.length / cols);
    await $`ffmpeg -hide_banner -loglevel error -y -framerate 1 -i ${join(tmp, "%04d.png")} -vf ${`tile=${cols}x${rows}:padding=2:color=white`} -frames:v 1 ${sheet}`;
    const probe = await $`ffprobe -v error -show_entries stream=height -of csv=p=0 ${join(tmp, "0000.png")}`;
    return { cols, rows, tileWidth, tileHeight: Number(probe.stdout.trim()), labelLines };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The parameters that differ between runs, as "cfg 3, seed 1" (all of them for one run). */
export function varying(runs, describe) {
  const parts = runs.map((r) => describe(r));
  const keys = [...new Set(parts.flatMap((p) => p.map(([k]) => k)))];
  const differs = keys.filter((k) => new Set(parts.map((p) => p.find(([x]) => x === k)?.[1])).size > 1);
  const shown = differs.length ? differs : keys;
  return parts.map((p) => p.filter(([k]) => shown.includes(k)).map(([k, v]) => (k === "steps" ? `${v} steps` : `${k} ${v}`)).join(", "));
}

/**
 * Writes `file` (a JPEG): up to `frames` frames of `video` taken evenly from its `numFrames`,
 * side by side at `height` pixels (small videos scaled up, nearest neighbour). Returns it as a
 * data: URI, for a report that carries its images inline.
 */
export async function frameStrip(video, file, numFrames, { frames = 4, height = 96 } = {}) {
  const every = Math.max(1, Math.ceil(numFrames / frames));
  const count = Math.max(1, Math.ceil(numFrames / every));
  const vf = [`select=not(mod(n\\,${every}))`, `scale=-2:${height}:flags=neighbor`, `tile=${count}x1:padding=2:color=white`].join(",");
  await $`ffmpeg -hide_banner -loglevel error -y -i ${video} -vf ${vf} -frames:v 1 -q:v 4 ${file}`;
  return `data:image/jpeg;base64,${readFileSync(file).toString("base64")}`;
}

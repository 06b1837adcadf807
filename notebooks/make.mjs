#!/usr/bin/env node
// Writes the notebooks from their cell sources below (run after editing: node notebooks/make.mjs).
// Outputs are not committed: CI executes each notebook through Jupyter with the wanlab kernel.
import { writeFileSync } from "node:fs";

const kernelspec = { name: "wanlab", display_name: "wanlab (TypeScript)", language: "typescript" };
const md = (s) => ({ cell_type: "markdown", metadata: {}, source: s.trim() });
const code = (s) => ({ cell_type: "code", metadata: {}, execution_count: null, outputs: [], source: s.trim() });
const nb = (cells) => JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: { kernelspec, language_info: { name: "typescript", file_extension: ".ts" } }, cells: cells.map((c, i) => ({ id: `c${i}`, ...c })) }, null, 1) + "\n";

const setup = `
import * as wan from "wanlab";
import { tmpdir } from "os";
import { join } from "path";
// The embedded default: a tiny random-weight Wan2.1 model, written to ~/.cache/wanlab on first use
// (seconds, nothing downloaded). For a real one: await wan.open({ model: "/models/Wan2.1-T2V-1.3B" })
const lab = await wan.open();
lab.info.layout`;

writeFileSync(new URL("01-quickstart.ipynb", import.meta.url), nb([
  md(`# wanlab quick start
Open a model once, generate, look at the video and where the time went. The tiny model makes noise-like
videos in seconds; the same cells run a real Wan2.1 checkpoint.`),
  code(setup),
  md("Generate. The bar above the result updates in place (step n/N, it/s, ETA); ■ stops at the next step."),
  code(`
const r = await lab.generate({ prompt: "A cat walks on the street at night, cinematic", negativePrompt: "blurry", seed: 42, height: 64, width: 64, numFrames: 5, numInferenceSteps: 4 });
r`),
  md("Time per denoising step and per component:"),
  code("lab.stats()"),
  md("The video object: frames as RGB bytes, saving an mp4 with its parameters."),
  code(`
const path = await r.video.save(join(tmpdir(), "wanlab-quickstart.mp4"));
console.log(r.video.numFrames, r.video.width, r.video.height, r.video.frames.length, path, r.params.seed);`),
  code("await lab.close();"),
]));

writeFileSync(new URL("02-parameter-sweep.ipynb", import.meta.url), nb([
  md(`# Parameter sweep
cfg scale × sigma shift × seed on one prompt: a contact sheet of first frames and a plot of how far each
video moves from the cfg=1 baseline.`),
  code(setup),
  code(`
const cfgs = [1, 3, 5], shifts = [3, 5], seeds = [1, 2];
const prompt = "A red kite above a green field";
const runs: { cfg: number; shift: number; seed: number; r: wan.NotebookResult }[] = [];
for (const seed of seeds)
  for (const shift of shifts)
    for (const cfg of cfgs)
      runs.push({ cfg, shift, seed, r: await lab.generate({ prompt, seed, cfgScale: cfg, sigmaShift: shift, height: 32, width: 32, numFrames: 1, numInferenceSteps: 2 }) });
runs.length`),
  md("Contact sheet: rows are seed × shift, columns cfg; each tile is the first frame."),
  code(`
const tile = 32, cols = cfgs.length, rows = seeds.length * shifts.length;
const sheet = { width: cols * tile, height: rows * tile, numFrames: 1, fps: 1, frames: new Uint8Array(cols * tile * rows * tile * 3) };
runs.forEach(({ r }, i) => {
  const cx = i % cols, cy = Math.floor(i / cols);
  for (let y = 0; y < tile; y++)
    sheet.frames.set(r.video.frames.subarray(y * tile * 3, (y + 1) * tile * 3), ((cy * tile + y) * sheet.width + cx * tile) * 3);
});
wan.display({ mimeBundle: () => ({ "image/png": wan.frameStrip(sheet).toString("base64"), "text/plain": "contact sheet" }) });`),
  md("Mean absolute difference from the cfg=1 video of the same seed and shift, per cfg:"),
  code(`
const diff = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
wan.plot.line(seeds.flatMap((seed) => shifts.map((shift) => {
  const base = runs.find((x) => x.seed === seed && x.shift === shift && x.cfg === 1)!.r.video.frames;
  return { name: \`seed \${seed}, shift \${shift}\`, x: cfgs, y: cfgs.map((cfg) => diff(runs.find((x) => x.seed === seed && x.shift === shift && x.cfg === cfg)!.r.video.frames, base)) };
})), { title: { text: "distance from cfg = 1" }, xaxis: { title: { text: "cfg scale" } }, yaxis: { title: { text: "mean |Δ| (0-255)" } } })`),
  code("await lab.close();"),
]));

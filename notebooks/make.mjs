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
  md(`Where it runs: \`devices\` defaults to \`"auto"\` (the first GPU when this build has CUDA and one is visible, else the CPU).
\`wan.doctor()\` checks the machine by running each path: libtorch, what auto picked and why, every GPU, ffmpeg, this kernel.`),
  code("await wan.doctor()"),
  md(`Will it fit? \`lab.memoryPlan()\` predicts what a generation holds on its device per stage (the memory model, nothing runs):
weights kept there, DiT blocks streamed in, activations. Here the tiny model's float32 decode of a full 480×832×81
video dominates; \`tiled: true\` cuts it. Open with \`budget: 24e9\` and every request is checked against it before any compute.`),
  code(`await lab.memoryPlan({ height: 480, width: 832, numFrames: 81, tiled: true })`),
  md("Generate. The bar above the result updates in place (step n/N, it/s, ETA) with a latent preview every 2 steps (a linear projection of the latents, no VAE); ■ stops at the next step."),
  code(`
const r = await lab.generate({ prompt: "A cat walks on the street at night, cinematic", negativePrompt: "blurry", seed: 42, height: 64, width: 64, numFrames: 5, numInferenceSteps: 4 }, { preview: { every: 2 } });
r`),
  md("Time per denoising step and per component, and memory per stage (the memory model's prediction; on CUDA the measured peak beside it):"),
  code("lab.stats()"),
  md("The video object: frames as RGB bytes, saving an mp4 with its parameters."),
  code(`
const path = await r.video.save(join(tmpdir(), "wanlab-quickstart.mp4"));
console.log(r.video.numFrames, r.video.width, r.video.height, r.video.frames.length, path, r.params.seed);`),
  code("await lab.close();"),
]));

writeFileSync(new URL("02-parameter-sweep.ipynb", import.meta.url), nb([
  md(`# Parameter sweep
cfg scale × sigma shift × seed on one prompt: the videos in a grid labelled by their parameters, two side by
side, and a plot of how far each video moves from the cfg=1 baseline.`),
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
  md("Contact sheet: rows are seed × shift, columns cfg; each tile is the video (its first frame in the PNG), captioned by its parameters."),
  code(`wan.plot.grid(runs.map((x) => x.r), { cols: cfgs.length, labels: runs.map((x) => \`cfg \${x.cfg} · shift \${x.shift} · seed \${x.seed}\`) })`),
  md("Two of them side by side, captioned by the parameters that differ; and one video's frames as a strip:"),
  code(`wan.plot.compare(runs[0]!.r, runs[2]!.r)`),
  code(`wan.frameStrip(runs[0]!.r)`),
  md("Mean absolute difference from the cfg=1 video of the same seed and shift, per cfg:"),
  code(`
const diff = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
wan.plot.line(seeds.flatMap((seed) => shifts.map((shift) => {
  const base = runs.find((x) => x.seed === seed && x.shift === shift && x.cfg === 1)!.r.video.frames;
  return { name: \`seed \${seed}, shift \${shift}\`, x: cfgs, y: cfgs.map((cfg) => diff(runs.find((x) => x.seed === seed && x.shift === shift && x.cfg === cfg)!.r.video.frames, base)) };
})), { title: { text: "distance from cfg = 1" }, xaxis: { title: { text: "cfg scale" } }, yaxis: { title: { text: "mean |Δ| (0-255)" } } })`),
  code("await lab.close();"),
]));

writeFileSync(new URL("03-parallel-layouts.ipynb", import.meta.url), nb([
  md(`# Parallel layouts
The same video on 1, 2 and 4 CPU ranks: Ulysses (all-to-all over heads), ring (K/V passed around,
online softmax), their hybrid, and CFG-parallel. Every layout must give the one-rank latents; the
charts show where the time went and what crossed between ranks. On CPU ranks sharing two cores this
checks correctness, not speed: on GPUs the same cells run with \`devices: "cuda:0-3"\`.`),
  code(`
import * as wan from "wanlab";
const params = { prompt: "A paper boat on a pond, morning light", negativePrompt: "blurry", seed: 7, height: 48, width: 48, numFrames: 5, numInferenceSteps: 4 };
const layouts = [
  { name: "1 rank", devices: "cpu" },
  { name: "Ulysses 2", devices: "cpu:0-1", ulysses: 2, ring: 1 },
  { name: "ring 2", devices: "cpu:0-1", ulysses: 1, ring: 2 },
  { name: "ring 4", devices: "cpu:0-3", ulysses: 1, ring: 4 },
  { name: "hybrid 2×2", devices: "cpu:0-3", ulysses: 2, ring: 2 },
  { name: "CFG × Ulysses 2", devices: "cpu:0-3", ulysses: 2, ring: 1, cfgParallel: true },
];
const runs: { name: string; ranks: number; r: wan.NotebookResult }[] = [];
layouts.length`),
  md("Each layout: open (the load bar times the weights and the device group's rendezvous), generate with a latent preview every 2 steps (the bar lists every rank), close."),
  code(`
for (const { name, ...layout } of layouts) {
  const lab = await wan.open(layout);
  runs.push({ name, ranks: lab.info.parallel!.devices, r: await lab.generate(params, { returnTensors: true, preview: { every: 2 } }) });
  await lab.close();
}
runs.map((x) => \`\${x.name}: \${x.ranks} rank(s), denoise \${x.r.timings.denoise_s.toFixed(2)} s\`).join("\\n")`),
  md("Parity with the one-rank run: relative L2 of the final latents and of the decoded video, largest pixel difference."),
  code(`
const relL2 = (a: Float32Array, b: Float32Array) => {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) (d += (a[i]! - b[i]!) ** 2), (n += b[i]! ** 2);
  return Math.sqrt(d / n);
};
const base = runs[0]!.r;
const parity = runs.map(({ name, ranks, r }) => ({
  name, ranks,
  latents: relL2(r.tensors!.latents.data, base.tensors!.latents.data),
  video: relL2(r.tensors!.video.data, base.tensors!.video.data),
  maxPixel: r.video.frames.reduce((m, v, i) => Math.max(m, Math.abs(v - base.video.frames[i]!)), 0),
}));
console.log("parity " + JSON.stringify(parity));
wan.display({ mimeBundle: () => ({
  "text/html": "<table><tr><th>layout</th><th>ranks</th><th>latents rel L2</th><th>video rel L2</th><th>max |Δ pixel|</th></tr>" +
    parity.map((p) => \`<tr><td>\${p.name}</td><td>\${p.ranks}</td><td>\${p.latents.toExponential(2)}</td><td>\${p.video.toExponential(2)}</td><td>\${p.maxPixel}</td></tr>\`).join("") + "</table>",
  "text/plain": parity.map((p) => \`\${p.name}: latents \${p.latents.toExponential(2)}, video \${p.video.toExponential(2)}, max |Δ pixel| \${p.maxPixel}\`).join("\\n"),
}) });
wan.plot.bar(parity.map((p) => p.name), parity.map((p) => p.latents), { title: { text: "latents: relative L2 to one rank" }, yaxis: { title: { text: "relative L2" }, exponentformat: "e" } })`),
  md("Compute vs communication per rank (hybrid 2×2), and what each layout sends:"),
  code(`wan.plot.communication(runs.find((x) => x.name === "hybrid 2×2")!.r)`),
  code(`
wan.plot.figure(runs.filter((x) => x.r.timings.ranks).map(({ name, r }) => ({
  type: "bar", name, x: r.timings.ranks!.map((_, i) => \`rank \${i}\`), y: r.timings.ranks!.map((c) => c.bytes_sent / 2 ** 20),
})), { title: { text: "sent per rank and layout" }, barmode: "group", yaxis: { title: { text: "MiB (denoising)" } } })`),
  code(`wan.plot.memory(runs.find((x) => x.name === "hybrid 2×2")!.r)`),
  md("The 4-rank video (the same as the one-rank one); `video.tensor()` is float32 [F, H, W, 3] in [0, 1]:"),
  code(`runs.at(-1)!.r.video.tensor().shape`),
  code(`runs.at(-1)!.r.video`),
]));

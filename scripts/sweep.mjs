#!/usr/bin/env zx
// A parameter sweep: the grid cfg × shift × steps × TeaCache threshold × denoising strength ×
// seeds for one prompt, run on a wanlab server, then a contact sheet (the first frame of every
// run, tiled by ffmpeg) and a plotly page of the timings.
//
//   scripts/sweep.mjs --prompt "a cat" --cfg 3,5,7 --shift 3,5 --steps 10,20 --seeds 1,2 --out runs/sweep
//   scripts/sweep.mjs --prompt "a cat" --tea-cache 0,0.1,0.2 --seeds 1,2          (speed against fidelity)
//   scripts/sweep.mjs --prompt "a cat" --input-video in.mp4 --strength 0.4,0.7,1   (video-to-video)
//
// Writes OUT/sweep.json, OUT/contact-sheet.png, OUT/sweep.html. Exit: 0 ok, 1 a job failed, 2 usage.
import { $, argv, fs, path } from "zx";
import { assertFits, fail, numbers, paramsFromFlags, plotlyHtml, spin, Usage, withServer } from "./lib/wanlab.mjs";

const help = "usage: sweep.mjs --prompt TEXT [--cfg 3,5,7] [--shift 3,5] [--steps 10,20] [--tea-cache 0,0.1 [--tea-cache-model-id ID]] [--input-video FILE --strength 0.5,0.8] [--seeds 1,2] [--out DIR] [--model DIR [--budget BYTES|auto] | --url URL --token T] [--height N --width N --num-frames N]";

async function main() {
  if (argv.help) return console.log(help);
  if (typeof argv.prompt !== "string") throw new Usage(`--prompt TEXT is required\n${help}`);
  if (argv.strength !== undefined && argv["input-video"] === undefined) throw new Usage(`--strength needs --input-video FILE\n${help}`);
  const base = paramsFromFlags({ ...argv, steps: undefined, seed: undefined }); // lists here, not numbers
  const grid = [];
  for (const cfgScale of numbers("cfg", argv.cfg, [5]))
    for (const sigmaShift of numbers("shift", argv.shift, [5]))
      for (const numInferenceSteps of numbers("steps", argv.steps, [base.numInferenceSteps ?? 50]))
        for (const teaCacheL1Thresh of numbers("tea-cache", argv["tea-cache"], [0]))
          for (const denoisingStrength of numbers("strength", argv.strength, [1]))
            for (const seed of numbers("seeds", argv.seeds, [0]))
              grid.push({ ...base, prompt: argv.prompt, cfgScale, sigmaShift, numInferenceSteps, seed, denoisingStrength,
                teaCacheL1Thresh, ...(teaCacheL1Thresh > 0 ? {} : { teaCacheModelId: undefined }) });
  const out = path.resolve(argv.out ?? "sweep");
  await fs.mkdirp(out);

  const runs = await withServer(argv, async (lab) => {
    await assertFits(lab, grid.map((params) => ({ params })), (r) => `cfg ${r.params.cfgScale}, shift ${r.params.sigmaShift}, ${r.params.numInferenceSteps} steps` +
      `${r.params.teaCacheL1Thresh ? `, TeaCache ${r.params.teaCacheL1Thresh}` : ""}${r.params.inputVideo ? `, strength ${r.params.denoisingStrength}` : ""}`);
    const ids = [];
    for (const p of grid) ids.push((await lab.submit(p)).id);
    return spin(`sweep of ${grid.length}`, () =>
      Promise.all(ids.map(async (id, i) => {
        const v = await lab.wait(id);
        const manifest = v.state === "done" ? JSON.parse((await lab.download(id, "manifest.json")).toString()) : undefined;
        const video = v.state === "done" ? await lab.download(id, "video.mp4") : undefined;
        return { ...grid[i], seed: v.params.seed, id, state: v.state, error: v.error, outputs: v.outputs ?? [], timings: manifest?.timings, video };
      })),
    );
  });

  // Contact sheet: the first frame of each run, in grid order, through ffmpeg's tile filter.
  const frames = path.join(out, ".frames");
  await fs.remove(frames);
  await fs.mkdirp(frames);
  const done = runs.filter((r) => r.video);
  for (const [i, r] of done.entries()) {
    const mp4 = path.join(frames, `${i}.mp4`);
    await fs.writeFile(mp4, r.video);
    await $`ffmpeg -hide_banner -loglevel error -y -i ${mp4} -frames:v 1 ${path.join(frames, String(i).padStart(4, "0") + ".png")}`;
  }
  const sheet = path.join(out, "contact-sheet.png");
  if (done.length) {
    const cols = Math.ceil(Math.sqrt(done.length));
    const rows = Math.ceil(done.length / cols);
    await $`ffmpeg -hide_banner -loglevel error -y -framerate 1 -i ${path.join(frames, "%04d.png")} -vf ${`tile=${cols}x${rows}:padding=2`} -frames:v 1 ${sheet}`;
  }
  await fs.remove(frames);

  const summary = runs.map(({ video, ...r }) => r);
  await fs.writeFile(path.join(out, "sweep.json"), JSON.stringify({ prompt: argv.prompt, runs: summary, contactSheet: done.length ? sheet : null }, null, 2) + "\n");
  const bySteps = [...new Set(summary.map((r) => r.numInferenceSteps))];
  const traces = bySteps.map((steps) => {
    const rs = summary.filter((r) => r.numInferenceSteps === steps && r.timings);
    return { type: "scatter", mode: "markers", name: `${steps} steps`, x: rs.map((r) => r.cfgScale), y: rs.map((r) => r.timings.generate_s), text: rs.map((r) => `shift ${r.sigmaShift}, seed ${r.seed}, ${r.id}`) };
  });
  await fs.writeFile(path.join(out, "sweep.html"), plotlyHtml(`sweep: ${argv.prompt}`, traces, { xaxis: { title: "cfg scale" }, yaxis: { title: "generate time (s)" } }));
  console.log(path.join(out, "sweep.json"));
  console.error(`${done.length}/${runs.length} done; contact sheet ${done.length ? sheet : "(none)"}; report ${path.join(out, "sweep.html")}`);
  if (done.length !== runs.length) process.exitCode = 1;
}

await main().catch(fail);

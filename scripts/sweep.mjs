#!/usr/bin/env node
// A parameter sweep: the grid cfg × shift × steps × TeaCache threshold × denoising strength ×
// seeds for one prompt, run on a wanlab server; each run's video and manifest gathered under
// --out, then a contact sheet (the first frame of every run, tiled by ffmpeg) and an offline
// report (OUT/report.html: the runs' frames, videos, parameters, manifests and timing charts).
// Run from the repository (node resolves zx and wanlab from its node_modules), or as
// `npx wanlab sweep` where the package is installed:
//
//   ./scripts/sweep.mjs --help                     (or: node scripts/sweep.mjs --help)
//   ./scripts/sweep.mjs --prompt "a cat" --cfg 3,5,7 --shift 3,5 --steps 10,20 --seeds 1,2 --out runs/sweep
//
// The flags are its table in ./lib/script-flags.mjs; any other is refused (exit 2) before a job
// is submitted.
import { fs, path } from "zx";
import { contactSheet, frameStrip, varying } from "./lib/contact-sheet.mjs";
import { progress } from "./lib/progress.mjs";
import { plotlySource, reportHtml } from "./lib/report.mjs";
import { sweepFlags as flags } from "./lib/script-flags.mjs";
import { assertFits, fail, linkOrCopy, paramsFromFlags, Usage, withServer } from "./lib/wanlab.mjs";

/** A grid point as its label and folder name say it: what differs from the defaults' one point. */
function label(p) {
  return `cfg ${p.cfgScale}, shift ${p.sigmaShift}, ${p.numInferenceSteps} steps${p.teaCacheL1Thresh ? `, TeaCache ${p.teaCacheL1Thresh}` : ""}` +
    `${p.inputVideo ? `, strength ${p.denoisingStrength}` : ""}, seed ${p.seed}`;
}
const slug = (i, p) => `${String(i).padStart(2, "0")}-${label(p).replace(/,? /g, (m) => (m === " " ? "" : "-")).replace(/[^\w.-]/g, "")}`;

async function main() {
  const argv = flags.parse();
  if (!argv) return;
  if (argv.strength.some((s) => s !== 1) && argv["input-video"] === undefined) throw new Usage(`--strength needs --input-video FILE\n${flags.help().split("\n")[0]}`);
  const base = paramsFromFlags(argv);
  const grid = [];
  for (const cfgScale of argv.cfg)
    for (const sigmaShift of argv.shift)
      for (const numInferenceSteps of argv.steps)
        for (const teaCacheL1Thresh of argv["tea-cache"])
          for (const denoisingStrength of argv.strength)
            for (const seed of argv.seeds)
              grid.push({ ...base, prompt: argv.prompt, cfgScale, sigmaShift, numInferenceSteps, seed, denoisingStrength,
                teaCacheL1Thresh, ...(teaCacheL1Thresh > 0 ? {} : { teaCacheModelId: undefined }) });
  const out = path.resolve(argv.out);
  await fs.mkdirp(path.join(out, "runs"));

  const strips = new Map(); // run → its frame strip as a data: URI, for the report
  const runs = await withServer(argv, async (lab) => {
    await assertFits(lab, grid.map((params) => ({ params })), (r) => label(r.params).replace(/, seed .*$/, ""));
    const ids = [];
    for (const p of grid) ids.push((await lab.submit(p)).id);
    const bar = progress(grid.length);
    console.error(`submitted ${grid.length} jobs; their videos and manifests go to ${path.join(out, "runs")}`);
    try {
      return await Promise.all(ids.map(async (id, i) => {
        const v = await lab.wait(id);
        const run = { ...grid[i], seed: v.params.seed, id, state: v.state, error: v.error, outputs: v.outputs ?? [] };
        if (v.state === "done") {
          // Gathered under OUT: the server's folder may be on another machine, or cleaned.
          const dir = path.join("runs", slug(i, grid[i]));
          await fs.mkdirp(path.join(out, dir));
          const manifest = await lab.download(id, "manifest.json");
          await fs.writeFile(path.join(out, dir, "manifest.json"), manifest);
          await fs.writeFile(path.join(out, dir, "video.mp4"), await lab.download(id, "video.mp4"));
          const m = JSON.parse(manifest.toString());
          Object.assign(run, { timings: m.timings, video: path.join(dir, "video.mp4"), manifest: path.join(dir, "manifest.json"), frames: path.join(dir, "frames.jpg") });
          strips.set(run, await frameStrip(path.join(out, run.video), path.join(out, run.frames), m.video.numFrames));
        }
        bar.finished(v.state === "done", `${label(grid[i])}: ${v.state}${v.error ? `: ${v.error}` : ""}`);
        return run;
      }));
    } finally {
      bar.end();
    }
  });

  // Contact sheet: the first frame of each done run, in grid order, labelled by the parameters
  // that vary over the grid (sweep.json's runs carry the same labels).
  const tea = runs.some((r) => r.teaCacheL1Thresh);
  const params = (r) => [["cfg", r.cfgScale], ["shift", r.sigmaShift], ["steps", r.numInferenceSteps],
    ...(tea ? [["TeaCache", r.teaCacheL1Thresh]] : []), ...(r.inputVideo ? [["strength", r.denoisingStrength]] : []), ["seed", r.seed]];
  const labels = varying(runs, params);
  runs.forEach((r, i) => (r.label = labels[i]));
  const done = runs.filter((r) => r.video);
  const sheet = path.join(out, "contact-sheet.png");
  if (done.length) await contactSheet(done.map((r) => ({ file: path.join(out, r.video), label: r.label })), sheet);

  const report = path.join(out, "report.html");
  await fs.writeFile(path.join(out, "sweep.json"), JSON.stringify({ prompt: argv.prompt, runs, contactSheet: done.length ? sheet : null, report }, null, 2) + "\n");
  // The report: time against each parameter the grid varies; a run that failed shows its reason.
  const axes = params(runs[0]).map(([k]) => k).filter((k) => new Set(runs.map((r) => String(params(r).find(([x]) => x === k)[1]))).size > 1);
  await fs.writeFile(report, reportHtml({
    title: `sweep: ${argv.prompt}`,
    about: [`${runs.length} runs of ${axes.length ? axes.join(" × ") : "one point"}; written ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`],
    links: [...(done.length ? [{ href: "contact-sheet.png", text: "contact sheet" }] : []), { href: "sweep.json", text: "sweep.json" }],
    axes,
    runs: runs.map((r) => ({ label: r.label, params: params(r), state: r.state, error: r.error, video: r.video, manifest: r.manifest, strip: strips.get(r), timings: r.timings })),
    plotly: plotlySource(),
  }));
  await linkOrCopy(report, path.join(out, "sweep.html"));
  console.log(path.join(out, "sweep.json"));
  console.error(`${done.length}/${runs.length} done; contact sheet ${done.length ? sheet : "(none)"}; report ${report}`);
  if (done.length !== runs.length) process.exitCode = 1;
}

await main().catch(fail);

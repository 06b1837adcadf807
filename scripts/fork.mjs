#!/usr/bin/env node
// Forks one run at step K into a grid of continuations: the run's first K steps once, on a local
// engine (`wanlab generate --stop-at-step K --save-tensors OUT/fork.safetensors`), then one job per
// point of continuation prompt × cfg × TeaCache threshold on a wanlab server, each resuming from
// that fork file (GenerateParams.resume), its video and manifest gathered under --out with a
// contact sheet. With the run's own prompt and cfg, a continuation is the uninterrupted run bit for
// bit (docs/forks.md). The server reads the fork file: it must run on this machine.
//
//   ./scripts/fork.mjs --help
//   ./scripts/fork.mjs --prompt "a red fox in snow" --at 10 --steps 30 --cfg 3,5,7 --prompts then.txt --out runs/fork
import { fs, path } from "zx";
import { spawnSync } from "node:child_process";
import { contactSheet, varying } from "./lib/contact-sheet.mjs";
import { forkFlags as flags } from "./lib/script-flags.mjs";
import { progress } from "./lib/progress.mjs";
import { cli, fail, paramsFromFlags, Usage, withServer } from "./lib/wanlab.mjs";

/** The fork state a fork file carries (its safetensors metadata "wanlab.fork"). */
async function forkState(file) {
  const buf = await fs.readFile(file);
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString("utf8"));
  return JSON.parse(header.__metadata__["wanlab.fork"]);
}

async function main() {
  const argv = flags.parse();
  if (!argv) return;
  const prompts = argv.prompts === undefined ? [argv.prompt]
    : (await fs.readFile(argv.prompts, "utf8")).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (!prompts.length) throw new Usage(`--prompts ${argv.prompts} holds no prompt`);
  const base = paramsFromFlags(argv);
  const out = path.resolve(argv.out);
  await fs.mkdirp(path.join(out, "runs"));
  const forkFile = path.join(out, "fork.safetensors");

  const runs = await withServer(argv, async (lab) => {
    // The fork, on a local engine of the server's model (the jobs' resume checks it is the same).
    const model = (await lab.health()).model;
    const trunk = ["--prompt", argv.prompt, "--model", model, "--stop-at-step", String(argv.at), "--save-tensors", forkFile, "--overwrite"];
    for (const f of ["negative-prompt", "seed", "steps", "cfg-scale", "sigma-shift", "height", "width", "num-frames", "tea-cache-l1-thresh", "tea-cache-model-id"])
      if (argv[f] !== undefined) trunk.push(`--${f}`, String(argv[f]));
    if (argv.tiled) trunk.push("--tiled");
    console.error(`fork: the run's first ${argv.at} steps on a local engine → ${forkFile}`);
    const r = spawnSync(process.execPath, [cli, "generate", ...trunk], { stdio: ["ignore", "ignore", "inherit"] });
    if (r.status !== 0) throw Object.assign(new Error(`the fork failed (wanlab generate exited ${r.status})`), r.status === 2 ? { name: "ParamError" } : {});
    const state = await forkState(forkFile);
    const grid = [];
    for (const prompt of prompts)
      for (const cfgScale of argv.cfg ?? [base.cfgScale ?? 5])
        for (const teaCacheL1Thresh of argv["tea-cache"])
          grid.push({ ...base, prompt, cfgScale, teaCacheL1Thresh, seed: state.seed, numInferenceSteps: state.steps, resume: forkFile,
            ...(teaCacheL1Thresh > 0 ? {} : { teaCacheModelId: undefined }) });
    const ids = [];
    for (const p of grid) ids.push((await lab.submit(p)).id);
    const bar = progress(grid.length);
    try {
      return await Promise.all(ids.map(async (id, i) => {
        const v = await lab.wait(id);
        const run = { ...grid[i], id, state: v.state, error: v.error };
        if (v.state === "done") {
          const dir = path.join("runs", `${String(i).padStart(2, "0")}-cfg${grid[i].cfgScale}-tea${grid[i].teaCacheL1Thresh}`);
          await fs.mkdirp(path.join(out, dir));
          await fs.writeFile(path.join(out, dir, "manifest.json"), await lab.download(id, "manifest.json"));
          await fs.writeFile(path.join(out, dir, "video.mp4"), await lab.download(id, "video.mp4"));
          Object.assign(run, { video: path.join(dir, "video.mp4"), manifest: path.join(dir, "manifest.json") });
        }
        bar.finished(v.state === "done", `${grid[i].prompt.slice(0, 40)}, cfg ${grid[i].cfgScale}: ${v.state}${v.error ? `: ${v.error}` : ""}`);
        return run;
      }));
    } finally {
      bar.end();
    }
  });

  const labels = varying(runs, (r) => [["prompt", r.prompt], ["cfg", r.cfgScale], ["TeaCache", r.teaCacheL1Thresh]]);
  runs.forEach((r, i) => (r.label = labels[i]));
  const done = runs.filter((r) => r.video);
  const sheet = path.join(out, "contact-sheet.png");
  if (done.length) await contactSheet(done.map((r) => ({ file: path.join(out, r.video), label: r.label })), sheet);
  const state = await forkState(forkFile);
  await fs.writeFile(path.join(out, "fork.json"), JSON.stringify({ prompt: argv.prompt, at: state.step, steps: state.steps, seed: state.seed,
    fork: forkFile, runs, contactSheet: done.length ? sheet : null }, null, 2) + "\n");
  console.log(path.join(out, "fork.json"));
  console.error(`${done.length}/${runs.length} continuations done; contact sheet ${done.length ? sheet : "(none)"}`);
  if (done.length !== runs.length) process.exitCode = 1;
}

await main().catch(fail);

// Custom schedules and forked runs through the API, the CLI and the server, on the tiny model:
// a timestep list equals the computed schedule it spells; a run stopped after step k and resumed
// (from its fork state or its fork file) equals the uninterrupted run bit for bit; a resume that
// does not fit the model, size or schedule is refused naming it.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { open, type EngineLab } from "../src/engine.js";
import { ParamError, resolveParams } from "../src/params.js";
import { readForkFile } from "../src/fork.js";
import { spawnSync } from "node:child_process";
import { forkCase as base, latentsOf, root, sameFloats as sameLatents, serverFixture, tinyModelFixture, wanlab } from "./helpers.js";
import { readSafetensors } from "./safetensors.js";
import { startServer, waitState, type RunningServer } from "./serve.js";

let lab: EngineLab;
const { dir, model } = tinyModelFixture("wanlab-fork-", async (model) => (lab = await open({ model })));
const cli = ["generate", "--model", model, "--prompt", base.prompt, "--negative-prompt", base.negativePrompt, "--seed", "7", "--height", "32",
  "--width", "32", "--num-frames", "5", "--cfg-scale", "4"];

describe("custom schedules", () => {
  test("timesteps [1000, 750, 500, 250] give the 4-step schedule's latents and are recorded", async () => {
    const computed = await lab.generate(base, { returnTensors: true });
    const listed = await lab.generate({ ...base, numInferenceSteps: undefined, timesteps: [1000, 750, 500, 250] }, { returnTensors: true });
    assert.ok(sameLatents(listed.tensors!.latents.data, computed.tensors!.latents.data));
    assert.deepEqual(listed.params.timesteps, [1000, 750, 500, 250]);
    assert.equal(listed.params.numInferenceSteps, 4);
    assert.deepEqual(computed.params.timesteps, []);
  });

  test("a bad timestep list is refused naming the field and the first offending index", () => {
    const field = (p: object) => {
      try {
        resolveParams({ prompt: "x", ...p });
      } catch (e) {
        assert.ok(e instanceof ParamError);
        return `${e.field}: ${e.message}`;
      }
      return "accepted";
    };
    assert.equal(field({ timesteps: [1000, 750, 800] }), "timesteps: timesteps[2] = 800 is not below timesteps[1] = 750: timesteps must be strictly decreasing");
    assert.equal(field({ timesteps: [1000, 0] }), "timesteps: timesteps[1] = 0 is outside (0, 1000]");
    assert.equal(field({ timesteps: [2000] }), "timesteps: timesteps[0] = 2000 is outside (0, 1000]");
    assert.equal(field({ timesteps: 900 }), "timesteps: timesteps must be an array of at most 1000 numbers");
    assert.equal(field({ timesteps: [] }), "accepted");  // none, as resolveParams gives it back
    assert.equal(field({ timesteps: [900, 100], numInferenceSteps: 3 }), "timesteps: timesteps lists 2 steps but numInferenceSteps is 3; give one of them");
    assert.equal(field({ timesteps: [900, 100] }), "accepted");
  });

  test("--timesteps on the CLI: recorded beside the video; a bad list exits 2 naming it", () => {
    const out = join(dir, "listed.mp4");
    const r = wanlab([...cli, "--timesteps", "1000,750,500,250", "--output", out]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(`${out}.json`, "utf8")).params.timesteps, [1000, 750, 500, 250]);
    const bad = wanlab([...cli, "--timesteps", "1000,x", "--output", join(dir, "bad.mp4")]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--timesteps must be comma-separated numbers like 1000,750,500,250; item 2 is 'x'/);
    const up = wanlab([...cli, "--timesteps", "500,900", "--output", join(dir, "bad.mp4")]);
    assert.equal(up.status, 2, up.stderr);
    assert.match(up.stderr, /timesteps\[1\] = 900 is not below timesteps\[0\] = 500/);
    assert.ok(!existsSync(join(dir, "bad.mp4")));
  });
});

describe("forked runs", () => {
  test("API: fork at step 2, resume with the same parameters: the uninterrupted run's latents, bit for bit", async () => {
    const whole = await lab.generate(base, { returnTensors: true });
    const run = await lab.fork(base, 2);
    assert.equal(run.state.fromStep, 2);
    assert.equal(run.state.steps, 4);
    assert.deepEqual(run.state.latents.shape, [16, 2, 4, 4]);
    assert.equal(run.timings.stopped_at_step, 2);
    const resumed = await lab.generate({ ...base, resume: run.state }, { returnTensors: true });
    assert.ok(sameLatents(resumed.tensors!.latents.data, whole.tensors!.latents.data));
    assert.equal((resumed.timings as { resumed_from_step?: number }).resumed_from_step, 2);
    // A continuation with another prompt and CFG differs from both.
    const other = await lab.generate({ ...base, prompt: "a grey wolf", cfgScale: 1, resume: run.state }, { returnTensors: true });
    assert.ok(!sameLatents(other.tensors!.latents.data, whole.tensors!.latents.data));
  });

  test("API: a resume from another model, size or schedule, or beyond its steps, is refused naming it", async () => {
    const run = await lab.fork(base, 2);
    const refused = async (p: object) => {
      try {
        await lab.generate({ ...base, ...p });
      } catch (e) {
        assert.ok(e instanceof ParamError, String(e));
        return `${e.field}: ${e.message}`;
      }
      return "accepted";
    };
    assert.match(await refused({ height: 48, resume: run.state }), /^resume: resume latents have shape \[16, 2, 4, 4\], this request's video needs \[16, 2, 6, 4\]/);
    assert.match(await refused({ resume: { ...run.state, model: "fnv1a64:0000000000000000" } }), /^resume: resume latents come from another model \(fnv1a64:0000000000000000\)/);
    assert.match(await refused({ sigmaShift: 3, resume: run.state }), /^resume: resume latents come from another schedule: sigma 1 was 0\.9375/);
    assert.match(await refused({ resume: { latents: run.state.latents, fromStep: 4 } }), /^resume: resume from step 4 is beyond the schedule's 4 steps/);
    await assert.rejects(lab.fork(base, 4), /stop_at_step must be between 1 and 3/);
  });

  test("CLI: --stop-at-step K --save-tensors writes a fork file; --resume continues it to the uninterrupted run's latents", () => {
    const fork = join(dir, "fork.safetensors");
    const a = wanlab([...cli, "--steps", "4", "--stop-at-step", "2", "--save-tensors", fork]);
    assert.equal(a.status, 0, a.stderr);
    const meta = JSON.parse(readSafetensors(fork).metadata["wanlab.fork"]!);
    assert.equal(meta.step, 2);
    assert.equal(meta.steps, 4);
    assert.equal(meta.seed, "7");
    assert.deepEqual(meta.shape, [16, 2, 4, 4]);
    assert.match(meta.model, /^fnv1a64:[0-9a-f]{16}$/);
    assert.equal(meta.sigmas.length, 4);
    const resumed = join(dir, "resumed.safetensors");
    const b = wanlab([...cli, "--steps", "4", "--resume", fork, "--output", join(dir, "resumed.mp4"), "--save-tensors", resumed]);
    assert.equal(b.status, 0, b.stderr);
    const whole = join(dir, "whole.safetensors");
    const c = wanlab([...cli, "--steps", "4", "--output", join(dir, "whole.mp4"), "--save-tensors", whole]);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(sameLatents(latentsOf(resumed), latentsOf(whole)));
    assert.equal(JSON.parse(readFileSync(join(dir, "resumed.mp4.json"), "utf8")).params.resume, fork);
    // Another size than the fork's: refused before compute, nothing written.
    const taller = cli.map((a, i) => (cli[i - 1] === "--height" ? "48" : a));
    const d = wanlab([...taller, "--steps", "4", "--resume", fork, "--output", join(dir, "refused.mp4")]);
    assert.equal(d.status, 2, d.stderr);
    assert.match(d.stderr, /resume latents have shape \[16, 2, 4, 4\]/);
    assert.ok(!existsSync(join(dir, "refused.mp4")));
    // --stop-at-step needs the file to write, and a step before the last.
    assert.match(wanlab([...cli, "--steps", "4", "--stop-at-step", "2"]).stderr, /--stop-at-step needs --save-tensors FILE/);
    assert.match(wanlab([...cli, "--steps", "4", "--stop-at-step", "4", "--save-tensors", join(dir, "x.safetensors")]).stderr, /--stop-at-step must be below the 4 steps/);
  });

  test("a fork file read back holds the state the API returns", async () => {
    const file = join(dir, "api-fork.safetensors");
    const run = await lab.fork(base, 3, { saveTensors: file });
    const back = await readForkFile(file);
    assert.deepEqual({ ...back, latents: undefined }, { ...run.state, latents: undefined });
    assert.ok(sameLatents(back.latents.data, run.state.latents.data));
    await assert.rejects(readForkFile(join(dir, "whole.safetensors")), /holds no fork state/);
  });
});

describe("on the server", () => {
  let s: RunningServer;
  serverFixture(async () => (s = await startServer(["--model", model, "--port", "0", "--outputs", join(dir, "outputs")], join(dir, "run"))));

  test("a job with timesteps and a job resuming a fork file: recorded in the manifest, the uninterrupted latents", async () => {
    const { prompt, negativePrompt, seed, height, width, numFrames, cfgScale } = base;
    const submit = async (body: object) => {
      const res = await s.api("/v1/jobs", { method: "POST", json: { prompt, negativePrompt, seed, height, width, numFrames, cfgScale, saveTensors: true, ...body } });
      assert.equal(res.status, 202, await res.clone().text());
      const j = await waitState(s, ((await res.json()) as { id: string }).id, ["done", "failed"]);
      assert.equal(j.state, "done", j.error);
      return { manifest: JSON.parse(readFileSync(j.outputs.find((f: string) => f.endsWith("manifest.json")), "utf8")),
        latents: latentsOf(j.outputs.find((f: string) => f.endsWith(".safetensors"))) };
    };
    const listed = await submit({ timesteps: [1000, 750, 500, 250] });
    assert.deepEqual(listed.manifest.params.timesteps, [1000, 750, 500, 250]);
    const fork = join(dir, "fork.safetensors");  // the CLI test's
    const resumed = await submit({ numInferenceSteps: 4, resume: fork });
    assert.equal(resumed.manifest.params.resume, fork);
    assert.ok(sameLatents(resumed.latents, listed.latents));
    // scripts/fork.mjs: the fork on a local engine, its continuations as jobs that resume it.
    const r = spawnSync(process.execPath, [join(root, "scripts", "fork.mjs"), "--url", s.url, "--token", s.token, "--prompt", prompt, "--negative-prompt",
      negativePrompt, "--at", "2", "--steps", "4", "--seed", "7", "--height", "32", "--width", "32", "--num-frames", "5", "--cfg-scale", "4", "--cfg", "1,4",
      "--out", join(dir, "fork-grid")], { encoding: "utf8", env: { ...process.env, CI: "1" } });
    assert.equal(r.status, 0, r.stderr);
    const grid = JSON.parse(readFileSync(join(dir, "fork-grid", "fork.json"), "utf8"));
    assert.deepEqual([grid.at, grid.steps, grid.seed], [2, 4, "7"]);
    assert.deepEqual(grid.runs.map((x: { cfgScale: number; state: string }) => [x.cfgScale, x.state]), [[1, "done"], [4, "done"]]);
    for (const x of grid.runs) assert.equal(JSON.parse(readFileSync(join(dir, "fork-grid", x.manifest), "utf8")).params.resume, join(dir, "fork-grid", "fork.safetensors"));
    assert.ok(existsSync(join(dir, "fork-grid", "contact-sheet.png")));
    const typo = spawnSync(process.execPath, [join(root, "scripts", "fork.mjs"), "--prompt", "x", "--at", "2", "--cfgs", "1"], { encoding: "utf8" });
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /unknown flag --cfgs; did you mean --cfg\?/);
    const bad = await s.api("/v1/jobs", { method: "POST", json: { prompt, timesteps: [1000, "x"] } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { field: string }).field, /^timesteps/);
  });

  test("a job's resume is checked at submit: a missing file, no fork state, another model, size or step count is a 400 naming resume and the problem", async () => {
    const { prompt, seed, height, width, numFrames } = base;
    const fork = join(dir, "fork.safetensors");  // the CLI test's: 32×32×5, 4 steps
    // The same fork with another model's fingerprint (same length, so the header keeps its size).
    const other = join(dir, "other-model.safetensors");
    const text = readFileSync(fork).toString("latin1");
    writeFileSync(other, Buffer.from(text.replace(/fnv1a64:[0-9a-f]{16}/, "fnv1a64:0000000000000000"), "latin1"));
    const refused = async (body: object) => {
      const res = await s.api("/v1/jobs", { method: "POST", json: { prompt, seed, height, width, numFrames, numInferenceSteps: 4, ...body } });
      const j = (await res.json()) as { field: string; error: string };
      return `${res.status} ${j.field}: ${j.error}`;
    };
    assert.equal(await refused({ resume: join(dir, "nope.safetensors") }), `400 resume: resume: cannot read ${join(dir, "nope.safetensors")}: no such file`);
    assert.match(await refused({ resume: join(dir, "whole.safetensors") }), /^400 resume: resume: .*whole\.safetensors holds no fork state/);
    assert.match(await refused({ resume: other }), /^400 resume: resume: .*other-model\.safetensors comes from another model \(fnv1a64:0000000000000000\), this engine's is fnv1a64:[0-9a-f]{16}$/);
    assert.match(await refused({ resume: fork, height: 48 }), /^400 resume: .*holds latents of shape \[16, 2, 4, 4\], this request's video needs \[16, 2, 6, 4\]/);
    assert.match(await refused({ resume: fork, numInferenceSteps: 5 }), /^400 resume: .*was stopped in a schedule of 4 steps, this request's has 5/);
    assert.match(await refused({ resume: dir }), /^400 resume: resume: cannot read .*: (it is a folder|not a regular file)/);
  });
});

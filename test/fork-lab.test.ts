// Forked runs in the notebook lab, on the tiny model: generate(params, { stopAtStep }) then
// resume(run) equals the uninterrupted lab.generate bit for bit, a resume with a changed CFG
// differs; a lab attached to a server refuses to stop a run and resumes the fork's file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, test } from "node:test";
import { connect, open, type NotebookLab } from "../src/lab.js";
import { forkCase as base, latentsOf, sameFloats as same, serverFixture, tinyModelFixture } from "./helpers.js";
import { startServer, type RunningServer } from "./serve.js";

let lab: NotebookLab;
const { dir, model } = tinyModelFixture("wanlab-fork-lab-", async (model) => (lab = await open({ model })));

describe("forked runs in an in-process notebook lab", () => {
  test("generate(params, { stopAtStep: 2 }) then resume(run): the uninterrupted run's latents, bit for bit; a changed cfgScale differs", async () => {
    const whole = await lab.generate(base, { returnTensors: true });
    const run = await lab.generate(base, { stopAtStep: 2 });
    assert.equal(run.state.fromStep, 2);
    assert.equal(run.state.steps, 4);
    assert.deepEqual(run.state.latents.shape, [16, 2, 4, 4]);
    assert.equal(run.params.seed, 7n);
    assert.match(inspect(run), /^fork at step 2\/4 · seed 7 · latents \[16, 2, 4, 4\]/);
    const resumed = await lab.resume(run, {}, { returnTensors: true });
    assert.ok(same(resumed.tensors!.latents.data, whole.tensors!.latents.data));
    assert.equal((resumed.timings as { resumed_from_step?: number }).resumed_from_step, 2);
    const other = await lab.resume(run, { cfgScale: 1 }, { returnTensors: true });
    assert.equal(other.params.cfgScale, 1);
    assert.ok(!same(other.tensors!.latents.data, whole.tensors!.latents.data));
    assert.equal(lab.history.at(-1), other);
  });

  test("a stopAtStep outside the schedule and an unknown parameter are refused naming them", async () => {
    await assert.rejects(lab.generate(base, { stopAtStep: 4 }), /stop_at_step must be between 1 and 3/);
    await assert.rejects(lab.generate(base, { stopAtStep: 0 }), /stopAtStep must be an integer >= 1, got 0/);
    await assert.rejects(lab.generate({ ...base, cfg: 3 } as object as typeof base, { stopAtStep: 2 }), /unknown parameter 'cfg'/);
  });
});

describe("forked runs through a server-attached lab", () => {
  let s: RunningServer;
  serverFixture(async () => (s = await startServer(["--model", model, "--port", "0", "--outputs", join(dir, "outputs")], join(dir, "run"))));

  test("stopAtStep is refused; resume() sends the fork's file as the job's resume and gives the uninterrupted latents", async () => {
    const remote = await connect({ url: s.url, token: s.token });
    try {
      await assert.rejects(remote.generate(base, { stopAtStep: 2 }), /^Error: stopAtStep: a lab attached to a server cannot stop a run/);
      const inMemory = await lab.generate(base, { stopAtStep: 2 });
      await assert.rejects(remote.resume(inMemory), /resume: a lab attached to a server resumes fork files only/);
      const file = join(dir, "fork.safetensors");
      const run = await lab.generate(base, { stopAtStep: 2, saveTensors: file });
      assert.equal(run.file, file);
      const wholeFile = join(dir, "whole.safetensors");
      await lab.generate(base, { saveTensors: wholeFile });
      const resumedFile = join(dir, "resumed.safetensors");
      const resumed = await remote.resume(run, {}, { saveTensors: resumedFile });
      assert.equal(resumed.params.resume, file);
      assert.ok(same(latentsOf(resumedFile), latentsOf(wholeFile)));
    } finally {
      await remote.close();
    }
  });
});

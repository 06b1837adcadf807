// `wanlab serve` on a device group: the same job on 2 CPU ranks (Ulysses 2) gives the latents of
// the single-rank in-process engine (the device group's parity, through the server's contract).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { open } from "../kernel/engine.js";
import { scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";
import { startServer, waitState, type RunningServer } from "./serve.js";

const dir = scratch();
let s: RunningServer | undefined;
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

test("a server on cpu:0-1 with ulysses 2 serves jobs that match one rank", async () => {
  const model = join(dir, "tiny");
  assert.equal(wanlab(["make-tiny", model]).status, 0);
  const params = { prompt: "a cat", seed: 5, height: 48, width: 48, numFrames: 5, numInferenceSteps: 2 };
  const lab = await open({ model });
  const one = await lab.generate(params, { returnTensors: true });
  await lab.close();

  s = await startServer(["--model", model, "--port", "0", "--outputs", join(dir, "out"), "--devices", "cpu:0-1", "--ulysses", "2"], join(dir, "run"));
  const res = await s.api("/v1/jobs", { method: "POST", json: { ...params, saveTensors: true } });
  assert.equal(res.status, 202, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  const job = await waitState(s, id, ["done", "failed"]);
  assert.equal(job.state, "done", JSON.stringify(job));
  const tensors = (job.outputs as string[]).find((p) => p.endsWith(".safetensors"))!;
  const latents = readSafetensors(tensors).tensors.latents!.f32!;
  const err = relL2(latents, one.tensors!.latents.data);
  assert.ok(err <= 1e-5, `latents rel L2 ${err}`);

  const bad = wanlab(["serve", "--model", model, "--devices", "cpu:0-2", "--ulysses", "2", "--port", "0"], { WANLAB_RUNTIME_DIR: join(dir, "run-bad") });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /must equal the number of devices \(3\)/);
});

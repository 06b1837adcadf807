// `wanlab serve` on a device group: the same job on 2 CPU ranks (Ulysses 2) gives the latents of
// the single-rank in-process engine (the device group's parity, through the server's contract).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { open } from "../src/engine.js";
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

test("wanlab serve on two nodes: node 0 takes the jobs and node 1 runs each in the shared 4-rank group", async () => {
  const { spawn } = await import("node:child_process");
  const { createServer } = await import("node:net");
  const { cliPath } = await import("./helpers.js");
  const model = join(dir, "tiny");
  if (wanlab(["inspect", model]).status !== 0) assert.equal(wanlab(["make-tiny", model]).status, 0);
  const port = await new Promise<number>((res) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
  const group = ["--model", model, "--devices", "cpu:0-1", "--ulysses", "2", "--ring", "2",
    "--rendezvous", `tcp://127.0.0.1:${port}`, "--nnodes", "2"];
  // Node 1 first: node 0's load waits for it in the rendezvous.
  const follower = spawn(process.execPath, [cliPath, "serve", ...group, "--node-rank", "1"], { stdio: ["ignore", "pipe", "pipe"] });
  let fout = "", ferr = "";
  follower.stdout.on("data", (d) => (fout += d));
  follower.stderr.on("data", (d) => (ferr += d));
  const followerExit = new Promise<number | null>((res) => follower.on("close", (code) => res(code)));
  const leader = await startServer([...group, "--node-rank", "0", "--port", "0", "--outputs", join(dir, "out2")], join(dir, "run2"));
  try {
    const params = { prompt: "a lighthouse", seed: 9, height: 48, width: 48, numFrames: 5, numInferenceSteps: 2 };
    const jobs: string[] = [];
    for (const seed of [9, 10]) {
      const res = await leader.api("/v1/jobs", { method: "POST", json: { ...params, seed, saveTensors: true } });
      assert.equal(res.status, 202, await res.clone().text());
      jobs.push(((await res.json()) as { id: string }).id);
    }
    const lab = await open({ model });
    for (const [i, id] of jobs.entries()) {
      const job = await waitState(leader, id, ["done", "failed"]);
      assert.equal(job.state, "done", `${JSON.stringify(job)}\nnode 1: ${ferr}`);
      const latents = readSafetensors((job.outputs as string[]).find((p) => p.endsWith(".safetensors"))!).tensors.latents!.f32!;
      const one = await lab.generate({ ...params, seed: 9 + i }, { returnTensors: true });
      const err = relL2(latents, one.tensors!.latents.data);
      assert.ok(err <= 1e-5, `job ${i}: latents rel L2 ${err}`);
    }
    await lab.close();
    assert.match(fout, /following node 0 at tcp:\/\/127\.0\.0\.1:/);
  } finally {
    leader.child.kill("SIGTERM");
    await leader.exited;
  }
  // Node 0 ends the request stream when it stops: node 1 returns by itself.
  assert.equal(await followerExit, 0, ferr);
  assert.match(ferr, /ran 2 job\(s\)/);
});

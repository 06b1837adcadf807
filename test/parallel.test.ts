// Sequence parallelism through the TypeScript API and `wanlab generate --devices`: a device group
// of CPU ranks gives the single-rank latents (the C++ tests cover every layout and the faults).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { open, type Lab } from "../kernel/engine.js";
import { scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";

const dir = scratch();
const model = join(dir, "tiny");
let single: Lab;
const params = { prompt: "a red fox in the snow", seed: 3n, height: 48, width: 48, numFrames: 5, numInferenceSteps: 2 };

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  single = await open({ model });
});
after(async () => single?.close());

test("open({ devices, ulysses, ring }) matches one rank; timings carry per-rank stats", async () => {
  const ref = await single.generate(params, { returnTensors: true });
  const lab = await open({ model, devices: "cpu:0-3", ulysses: 2, ring: 2 });
  try {
    const r = await lab.generate(params, { returnTensors: true });
    const e = relL2(r.tensors!.latents.data, ref.tensors!.latents.data);
    assert.ok(e <= 1e-5, `latents rel L2 ${e}`);
    const ranks = r.timings.ranks!;
    assert.equal(ranks.length, 4);
    assert.ok(ranks.every((x) => x.bytes_sent > 0));
  } finally {
    await lab.close();
  }
});

test("bad layouts are refused with the reason", async () => {
  await assert.rejects(open({ model, devices: "cpu:0-3", ulysses: 4 }), /ulysses degree 4 does not divide the DiT's 2 heads/);
  await assert.rejects(open({ model, devices: "cpu:0-2", ulysses: 2, ring: 2 }), /must equal the number of devices \(3\)/);
});

test("wanlab generate --devices cpu:0-1 --cfg-parallel --save-tensors matches one rank", () => {
  const args = ["generate", "--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "2",
    "--height", "32", "--width", "48", "--num-frames", "1"];
  const one = wanlab([...args, "--output", join(dir, "one.mp4"), "--save-tensors", join(dir, "one.safetensors")]);
  assert.equal(one.status, 0, one.stderr);
  const two = wanlab([...args, "--devices", "cpu:0-1", "--cfg-parallel", "--output", join(dir, "two.mp4"),
    "--save-tensors", join(dir, "two.safetensors")]);
  assert.equal(two.status, 0, two.stderr);
  const a = readSafetensors(join(dir, "one.safetensors")).tensors.latents!.f32!;
  const b = readSafetensors(join(dir, "two.safetensors")).tensors.latents!.f32!;
  assert.ok(relL2(b, a) <= 1e-5, `latents rel L2 ${relL2(b, a)}`);
  const bad = wanlab([...args, "--devices", "cpu:0-3", "--ulysses", "3", "--output", join(dir, "bad.mp4")]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /ulysses \(3\) x ring \(0\)|must equal the number of devices/);
});

test("two processes --rendezvous tcp://127.0.0.1:PORT --nnodes 2 --node-rank 0|1 match the one-process 4-rank run", async () => {
  const { spawn } = await import("node:child_process");
  const { createServer } = await import("node:net");
  const { cliPath } = await import("./helpers.js");
  const port = await new Promise<number>((res) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
  const args = ["generate", "--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "2",
    "--height", "48", "--width", "48", "--num-frames", "5", "--cfg-scale", "5"];
  const node = (k: number) =>
    new Promise<{ code: number | null; stderr: string }>((res) => {
      const p = spawn(process.execPath, [cliPath, ...args, "--devices", "cpu:0-1", "--ulysses", "2", "--ring", "2",
        "--rendezvous", `tcp://127.0.0.1:${port}`, "--nnodes", "2", "--node-rank", String(k),
        "--output", join(dir, `node${k}.mp4`), "--save-tensors", join(dir, `node${k}.safetensors`)], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => res({ code, stderr }));
    });
  const [n0, n1] = await Promise.all([node(0), node(1)]);
  assert.equal(n0.code, 0, n0.stderr);
  assert.equal(n1.code, 0, n1.stderr);
  const four = wanlab([...args, "--devices", "cpu:0-3", "--ulysses", "2", "--ring", "2", "--output", join(dir, "four.mp4"),
    "--save-tensors", join(dir, "four.safetensors")]);
  assert.equal(four.status, 0, four.stderr);
  const a = readSafetensors(join(dir, "four.safetensors")).tensors.latents!.f32!;
  const b = readSafetensors(join(dir, "node0.safetensors")).tensors.latents!.f32!;
  assert.ok(relL2(b, a) <= 1e-5, `latents rel L2 ${relL2(b, a)}`);
  const { existsSync } = await import("node:fs");
  assert.ok(!existsSync(join(dir, "node1.mp4")) && !existsSync(join(dir, "node1.safetensors")), "node 1 writes nothing");
});

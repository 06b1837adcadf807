// Sequence parallelism through the TypeScript API and `wanlab generate --devices`: a device group
// of CPU ranks gives the single-rank latents (the C++ tests cover every layout and the faults).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { open, type Lab } from "../src/engine.js";
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
    // Per rank and per step: compute vs communication, bytes, checks, peak memory.
    for (const [i, x] of ranks.entries()) {
      assert.equal(x.rank, i);
      assert.equal(x.device, `cpu:${i}`);
      assert.equal(x.step_s!.length, params.numInferenceSteps);
      assert.equal(x.step_bytes!.reduce((a, b) => a + b, 0), x.bytes_sent);
      const comm = x.step_comm_s!.reduce((a, b) => a + b, 0);
      const compute = x.step_compute_s!.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(comm - x.comm_s) < 1e-9 && Math.abs(compute - x.compute_s!) < 1e-9, JSON.stringify(x));
      assert.ok(x.compute_s! > 0 && x.comm_s > 0 && x.checks! > 0 && x.peak_bytes! > 0, JSON.stringify(x));
    }
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

test("a node that dies (SIGKILL) makes the other fail within the timeout, naming it, the collective and the step", async () => {
  const { spawn } = await import("node:child_process");
  const { createServer } = await import("node:net");
  const { existsSync, readFileSync } = await import("node:fs");
  const { cliPath } = await import("./helpers.js");
  const port = await new Promise<number>((res) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
  const timeoutS = 10;
  // 300 steps: minutes of work, so node 1 is killed mid-generation.
  const args = ["generate", "--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "300",
    "--height", "64", "--width", "64", "--num-frames", "9", "--devices", "cpu:0-1", "--ulysses", "2", "--ring", "2",
    "--rendezvous", `tcp://127.0.0.1:${port}`, "--nnodes", "2", "--timeout", String(timeoutS), "--log-level", "info"];
  let killedAt = 0;
  const node = (k: number) =>
    new Promise<{ code: number | null; signal: string | null; stderr: string; at: number }>((res) => {
      const p = spawn(process.execPath, [cliPath, ...args, "--node-rank", String(k), "--log-dir", join(dir, `logs${k}`),
        "--output", join(dir, `dead${k}.mp4`)], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      p.stderr.on("data", (d) => {
        stderr += d;
        if (k === 1 && !killedAt && /step [3-9]\/300/.test(stderr)) {
          killedAt = Date.now();
          p.kill("SIGKILL");
        }
      });
      // A hang is a failure, not a stuck test run.
      const guard = setTimeout(() => p.kill("SIGKILL"), (timeoutS + 60) * 1000);
      p.on("close", (code, signal) => {
        clearTimeout(guard);
        res({ code, signal, stderr, at: Date.now() });
      });
    });
  const [n0, n1] = await Promise.all([node(0), node(1)]);
  assert.equal(n1.signal, "SIGKILL", `node 1 was not killed mid-generation: ${n1.stderr}`);
  assert.equal(n0.code, 1, n0.stderr);
  const after = (n0.at - killedAt) / 1000;
  assert.ok(after < timeoutS + 15, `node 0 took ${after} s to fail after the kill (timeout ${timeoutS} s)`);
  const msg = n0.stderr.split("\n").find((l) => l.startsWith("wanlab generate: ")) ?? "";
  assert.match(msg, /node 1 \(ranks 2-3\) stopped responding/);
  assert.match(msg, /rank [01] \(cpu:[01]\): (send\/recv|all_gather|broadcast|all_to_all) '[^']+' in group \S+ at step \d+\/300/);
  assert.ok(!existsSync(join(dir, "dead0.mp4")));
  // Node 0's per-rank logs: the group, the request, the failure.
  const log0 = readFileSync(join(dir, "logs0", "rank-0.log"), "utf8");
  assert.match(log0, /^\[rank 0 cpu:0\] /);
  assert.match(log0, /info: joined world\[0,1,2,3\]/);
  assert.match(log0, /info: request 1: start, 300 steps/);
  assert.match(readFileSync(join(dir, "logs0", "node-0.log"), "utf8"), /error: node 1 \(ranks 2-3\) stopped responding/);
  assert.match(readFileSync(join(dir, "logs1", "rank-2.log"), "utf8"), /^\[rank 2 cpu:0\] \S+ info: request 1: start/m);
  console.log(`node 0 failed ${after.toFixed(2)} s after node 1 was killed: ${msg}`);
});

test("--timeout and --log-level are checked; WANLAB_LOG_LEVEL sets the level of the per-rank log files", async () => {
  const { existsSync, readFileSync } = await import("node:fs");
  const base = ["--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "2", "--height", "32", "--width", "32",
    "--num-frames", "1", "--devices", "cpu:0-1", "--ulysses", "2"];
  const t0 = wanlab(["generate", ...base, "--timeout", "0"]);
  assert.equal(t0.status, 2);
  assert.match(t0.stderr, /--timeout must be seconds in \(0, 86400\], got 0/);
  const lv = wanlab(["generate", ...base, "--log-level", "verbose"]);
  assert.equal(lv.status, 2);
  assert.match(lv.stderr, /--log-level must be one of error, warn, info, debug, got 'verbose'/);
  const sv = wanlab(["serve", "--model", model, "--devices", "cpu:0-1", "--timeout", "soon"]);
  assert.equal(sv.status, 2);
  assert.match(sv.stderr, /--timeout must be a number, got 'soon'/);
  const run = (level: string, logs: string) => {
    const r = wanlab(["generate", ...base, "--log-dir", logs, "--output", join(dir, `env-${level}.mp4`)], { WANLAB_LOG_LEVEL: level });
    assert.equal(r.status, 0, r.stderr);
  };
  run("debug", join(dir, "env-debug"));
  for (const k of [0, 1]) {
    const log = readFileSync(join(dir, "env-debug", `rank-${k}.log`), "utf8");
    assert.match(log, new RegExp(`^\\[rank ${k} cpu:${k}\\] \\S+ debug: all_to_all 'ulysses q/k/v' in group ulysses\\[0,1\\] at step 1/2, block 0: `, "m"));
    assert.match(log, /info: request 1: done in .* bytes sent in \d+ collectives/);
  }
  assert.ok(!existsSync(join(dir, "env-debug", "rank-2.log")));
  run("warn", join(dir, "env-warn"));  // a request that succeeds logs nothing at warn
  assert.ok(!existsSync(join(dir, "env-warn", "rank-0.log")));
});

describe("weight sharding (--shard-weights)", () => {
  test("2 CPU ranks with sharded DiT blocks give the unsharded latents bit for bit", () => {
    const base = ["generate", "--model", model, "--prompt", "a red kite over the sea", "--seed", "3",
      "--height", "32", "--width", "32", "--num-frames", "5", "--num-inference-steps", "2",
      "--devices", "cpu:0-1", "--ulysses", "2"];
    const dir = scratch();
    const plain = wanlab([...base, "--output", join(dir, "a.mp4"), "--save-tensors", join(dir, "a.safetensors")]);
    assert.equal(plain.status, 0, plain.stderr);
    const sharded = wanlab([...base, "--shard-weights", "--output", join(dir, "b.mp4"), "--save-tensors", join(dir, "b.safetensors")]);
    assert.equal(sharded.status, 0, sharded.stderr);
    const a = readSafetensors(join(dir, "a.safetensors")).tensors.latents!.f32!;
    const b = readSafetensors(join(dir, "b.safetensors")).tensors.latents!.f32!;
    assert.deepEqual(Array.from(b), Array.from(a));
  });

  test("--shard-weights without a sequence-parallel group names the problem", () => {
    const r = wanlab(["generate", "--model", model, "--prompt", "x", "--height", "32", "--width", "32",
      "--num-frames", "1", "--num-inference-steps", "1", "--shard-weights", "--output", join(scratch(), "x.mp4")]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /shard weights needs a sequence-parallel group/);
  });
});

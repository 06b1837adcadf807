// `--rendezvous env://` under the real torchrun (`python3 -m torch.distributed.run` from the
// PyTorch 2 CPU wheel CI installs in .cache/torch-2): 2 and 4 processes of `wanlab generate`, one
// rank each, give rank 0 the one-rank latents, and `--layout auto` treats the processes of one host
// as one node; `wanlab serve` under torchrun answers a job from
// rank 0 while rank 1 follows; bad launch variables are refused before any load.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { before, test } from "node:test";
import { checkLinks, linksText } from "../src/doctor.js";
import { open } from "../src/engine.js";
import { cliPath, root, scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";
import { startServer, tiny, waitFor, waitState } from "./serve.js";

const torch2 = join(root, ".cache", "torch-2");
const haveTorchrun = existsSync(join(torch2, "torch", "distributed", "run.py"));
const skip = haveTorchrun ? false : `no PyTorch 2 wheel in ${torch2} (CI installs it; .ci/run)`;
if (!haveTorchrun && process.env.CI === "true") throw new Error(`torchrun tests need ${torch2} under CI`);

const dir = scratch();
const model = join(dir, "tiny");
const args = ["--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "2",
  "--height", "48", "--width", "48", "--num-frames", "5"];

let one: Float32Array;
before(async () => {
  assert.equal(wanlab(["make-tiny", model]).status, 0);
  // One rank, in process: the same request as `args`.
  const lab = await open({ model });
  one = (await lab.generate({ prompt: "a boat", seed: 5n, numInferenceSteps: 2, height: 48, width: 48, numFrames: 5 },
    { returnTensors: true })).tensors!.latents.data as Float32Array;
  await lab.close();
});

/** A port p with p + 1 free as well (torchrun's agent takes p, wanlab's store p + 1). */
async function portPair(): Promise<number> {
  const listen = (p: number) => new Promise<number | undefined>((res) => {
    const srv = createServer();
    srv.once("error", () => res(undefined));
    srv.listen(p, "127.0.0.1", () => {
      const got = (srv.address() as { port: number }).port;
      srv.close(() => res(got));
    });
  });
  for (let i = 0; i < 20; i++) {
    const p = await listen(0);
    if (p !== undefined && p < 65535 && (await listen(p + 1)) !== undefined) return p;
  }
  throw new Error("no two consecutive free ports");
}

interface Run { code: number | null; stdout: string; stderr: string }

/** torchrun --nproc-per-node N --no-python node bin/wanlab.js ARGS, in `cwd`. */
function torchrun(n: number, port: number, wanlabArgs: string[], cwd: string, onStdout?: (s: string) => void) {
  const child = spawn("python3", ["-m", "torch.distributed.run", "--nproc-per-node", String(n), "--master-port", String(port),
    "--no-python", process.execPath, cliPath, ...wanlabArgs],
  { cwd, env: { ...process.env, PYTHONPATH: torch2, WANLAB_RUNTIME_DIR: join(cwd, "run") }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout.on("data", (d) => { stdout += d; onStdout?.(stdout); });
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<Run>((res) => child.on("close", (code) => res({ code, stdout, stderr })));
  return { child, done };
}

function latents(path: string): Float32Array {
  return readSafetensors(path).tensors.latents!.f32!;
}

for (const [n, layout] of [[2, ["--ulysses", "2"]], [4, ["--ulysses", "2", "--ring", "2"]]] as const) {
  test(`torchrun --nproc-per-node ${n} of wanlab generate --rendezvous env:// ${layout.join(" ")}: rank 0 writes the one-rank latents, every rank logs to its own file`, { skip }, async () => {
    const cwd = join(dir, `run${n}`);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(cwd);
    const r = await torchrun(n, await portPair(), ["generate", ...args, ...layout, "--rendezvous", "env://", "--timeout", "30",
      "--output", join(cwd, "out.mp4"), "--save-tensors", join(cwd, "out.safetensors")], cwd).done;
    assert.equal(r.code, 0, r.stderr);
    const e = relL2(latents(join(cwd, "out.safetensors")), one);
    assert.ok(e <= 1e-5, `latents rel L2 ${e}`);
    assert.ok(existsSync(join(cwd, "out.mp4.json")), "rank 0 writes the sidecar");
    assert.equal((r.stdout.match(/out\.mp4$/gm) ?? []).length, 1, "only rank 0 writes the video");
    for (let k = 1; k < n; k++) assert.match(r.stderr, new RegExp(`node ${k} of ${n}: done \\(node 0 writes the outputs\\)`));
    // wanlab-logs/RUN_ID/rank-K.log, one per rank, each naming its own rank.
    const runs = readdirSync(join(cwd, "wanlab-logs"));
    assert.equal(runs.length, 1);
    for (let k = 0; k < n; k++) {
      const log = readFileSync(join(cwd, "wanlab-logs", runs[0]!, `rank-${k}.log`), "utf8");
      assert.match(log, new RegExp(`^\\[rank ${k} cpu:0\\] .* info: `, "m"));
      assert.match(r.stderr, new RegExp(`wanlab: rank ${k} of ${n} \\(env://, store [\\w.-]+:\\d+\\), devices auto:${k}, logs in `));
    }
  });
}

test("wanlab serve under torchrun (2 processes): rank 0 serves HTTP and answers a job, rank 1 follows", { skip }, async () => {
  const cwd = join(dir, "serve");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(cwd);
  let url: string | undefined;
  const run = torchrun(2, await portPair(), ["serve", "--model", model, "--ulysses", "2", "--rendezvous", "env://", "--timeout", "30",
    "--port", "0", "--outputs", join(cwd, "out")], cwd, (out) => (url ??= /^listening on (\S+)$/m.exec(out)?.[1]));
  try {
    await waitFor("listening on", async () => url, 40_000);
    const { token } = JSON.parse(readFileSync(join(cwd, "run", "server.json"), "utf8")) as { token: string };
    const api = (path: string, init: RequestInit = {}) =>
      fetch(url + path, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } });
    const params = { prompt: "a boat", seed: 5, height: 48, width: 48, numFrames: 5, numInferenceSteps: 2, saveTensors: true };
    const res = await api("/v1/jobs", { method: "POST", body: JSON.stringify(params) });
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    const job = await waitFor("job done", async () => {
      const j = (await (await api(`/v1/jobs/${id}`)).json()) as Record<string, any>;
      return j.state === "done" || j.state === "failed" ? j : undefined;
    }, 40_000);
    assert.equal(job.state, "done", JSON.stringify(job));
    const e = relL2(latents((job.outputs as string[]).find((p) => p.endsWith(".safetensors"))!), one);
    assert.ok(e <= 1e-5, `latents rel L2 ${e}`);
    const manifest = JSON.parse(readFileSync((job.outputs as string[]).find((p) => p.endsWith("manifest.json"))!, "utf8")) as { parallel: unknown };
    assert.deepEqual(manifest.parallel, { devices: 2, ulysses: 2, ring: 1, cfg: 1 });
  } finally {
    run.child.kill("SIGTERM");
  }
  const r = await run.done;
  assert.match(r.stdout, /following node 0 at tcp:\/\/[\w.-]+:\d+/, r.stderr);
});

test("env:// refuses missing or invalid variables and a WORLD_SIZE the layout does not fit, before any load", () => {
  const env = { MASTER_ADDR: "127.0.0.1", MASTER_PORT: "29999", RANK: "0", WORLD_SIZE: "2", LOCAL_RANK: "0", LOCAL_WORLD_SIZE: "2" };
  const gen = ["generate", ...args, "--rendezvous", "env://", "--output", join(dir, "bad.mp4")];
  const run = (extra: string[], vars: Record<string, string>) => {
    const r = wanlab([...gen, ...extra], vars);
    assert.equal(r.status, 2, r.stderr);
    assert.doesNotMatch(r.stderr, /loading/);
    return r.stderr;
  };
  assert.match(run(["--ulysses", "2", "--ring", "2"], env),
    /WORLD_SIZE=2 gives 2 ranks, but --ulysses 2 × --ring 2 makes 4; the degrees describe the whole world/);
  assert.match(run(["--cfg-parallel", "--ulysses", "2"], env), /WORLD_SIZE=2 gives 2 ranks, but --ulysses 2 × --cfg-parallel \(2\) does not divide/);
  assert.match(run([], { ...env, MASTER_PORT: "", LOCAL_RANK: "" }), /env:\/\/ needs MASTER_PORT, LOCAL_RANK in the environment/);
  assert.match(run([], { ...env, RANK: "2" }), /RANK=2 must be below WORLD_SIZE=2/);
  assert.match(run([], { ...env, WORLD_SIZE: "two" }), /WORLD_SIZE='two' must be an integer in \[1, 1024\]/);
  assert.match(run([], { ...env, LOCAL_RANK: "3" }), /LOCAL_RANK=3 must be below LOCAL_WORLD_SIZE=2/);
  assert.match(run(["--node-rank", "1"], env), /drop --nnodes and --node-rank/);
  assert.equal(existsSync(join(dir, "bad.mp4")), false);
});

test("the pre-flight check names a rank that never joins within the timeout, before any weights load", async () => {
  const port = await portPair();
  const env = { MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port), RANK: "0", WORLD_SIZE: "2", LOCAL_RANK: "0", LOCAL_WORLD_SIZE: "2" };
  const t0 = performance.now();
  const r = wanlab(["generate", ...args, "--ulysses", "2", "--rendezvous", "env://", "--timeout", "3",
    "--log-dir", join(dir, "pre-logs"), "--output", join(dir, "pre.mp4")], env);
  const s = (performance.now() - t0) / 1000;
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`pre-flight: rank 1 \\(node 1\\) never joined the rendezvous at 127\\.0\\.0\\.1:${port} within 3 s ` +
    "\\(not started, crashed before joining, or cannot reach .*\\); joined: node 0 \\(rank 0, host [^,]+, cpu:0\\)\\. No weights were loaded"));
  assert.ok(s < 15, `took ${s} s`);
  assert.equal(existsSync(join(dir, "pre.mp4")), false);
});

test("--layout auto picks cfg-parallel × Ulysses by the documented rule, records why in the sidecar and matches one rank", () => {
  const out = join(dir, "auto.mp4");
  const r = wanlab(["generate", ...args, "--devices", "cpu:0-3", "--layout", "auto", "--output", out, "--save-tensors", join(dir, "auto.safetensors")]);
  assert.equal(r.status, 0, r.stderr);
  const e = relL2(latents(join(dir, "auto.safetensors")), one);
  assert.ok(e <= 1e-5, `latents rel L2 ${e}`);
  const meta = JSON.parse(readFileSync(`${out}.json`, "utf8")) as { parallel: Record<string, unknown> };
  assert.deepEqual(meta.parallel, { devices: 4, ulysses: 2, ring: 1, cfg: 2,
    reason: "auto: cfg-parallel 2: 4 ranks are even (rule 1); ulysses 2: the largest degree dividing the 2 ranks per branch and the 2 heads (rule 2)" });
  const both = wanlab(["generate", ...args, "--devices", "cpu:0-3", "--layout", "auto", "--ulysses", "2", "--output", join(dir, "bad.mp4")]);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /layout auto chooses ulysses, ring and cfg parallel itself; give either layout auto or the degrees/);
  const bad = wanlab(["generate", ...args, "--layout", "best", "--output", join(dir, "bad.mp4")]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--layout/);
});

test("torchrun --nproc-per-node 4 with --layout auto: the 4 one-rank processes of one host are one node (Ulysses within it, no ring), the pre-flight measures their links within the host, the sidecar says so, rank 0 matches one rank", { skip }, async () => {
  const cwd = join(dir, "auto4");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(cwd);
  const r = await torchrun(4, await portPair(), ["generate", ...args, "--layout", "auto", "--rendezvous", "env://", "--timeout", "30",
    "--output", join(cwd, "out.mp4"), "--save-tensors", join(cwd, "out.safetensors")], cwd).done;
  assert.equal(r.code, 0, r.stderr);
  const e = relL2(latents(join(cwd, "out.safetensors")), one);
  assert.ok(e <= 1e-5, `latents rel L2 ${e}`);
  const { parallel } = JSON.parse(readFileSync(join(cwd, "out.mp4.json"), "utf8")) as { parallel: Record<string, unknown> };
  // grouped by host, not by process: cfg 2 x ulysses 2 (a process per node would give ulysses 1 x ring 2)
  assert.deepEqual([parallel.devices, parallel.cfg, parallel.ulysses, parallel.ring], [4, 2, 2, 1]);
  const num = "[\\d.e+-]+";
  assert.match(String(parallel.reason), new RegExp("^auto: cfg-parallel 2: 4 ranks are even \\(rule 1\\); ulysses 2: the largest degree " +
    "dividing the 2 ranks per branch and the 2 heads \\(rule 2\\); 4 ranks per host \\(all on host [^,]+, 4 processes; from the hosts " +
    `the pre-flight exchanged\\); links: within a host ${num} GB/s, ${num} us; compute ${num} [GT]FLOP/s \\(probe ${num} ms\\): ` +
    `one host, rules 1-3 stand \\(rule 4\\); modelled ${num} s per step at 32760 tokens \\(compute ${num} s, comm ${num} s, ` +
    `${num} s of it across hosts\\)$`));
});

test("wanlab serve --layout auto: a job's manifest.json records the layout and its reason, as generate's sidecar does", async () => {
  const s = await startServer(["--model", model, "--devices", "cpu:0-3", "--layout", "auto", "--port", "0", "--outputs", join(dir, "auto-out")],
    join(dir, "auto-run"));
  try {
    const res = await s.api("/v1/jobs", { method: "POST", json: { prompt: "a boat", seed: 5, ...tiny, height: 32, width: 32 } });
    assert.equal(res.status, 202, await res.clone().text());
    const job = await waitState(s, ((await res.json()) as { id: string }).id, ["done", "failed"]);
    assert.equal(job.state, "done", JSON.stringify(job));
    const manifest = JSON.parse(readFileSync((job.outputs as string[]).find((p) => p.endsWith("manifest.json"))!, "utf8")) as { parallel: unknown };
    assert.deepEqual(manifest.parallel, { devices: 4, ulysses: 2, ring: 1, cfg: 2,
      reason: "auto: cfg-parallel 2: 4 ranks are even (rule 1); ulysses 2: the largest degree dividing the 2 ranks per branch and the 2 heads (rule 2)" });
  } finally {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

test("inspect --layout auto reports the degrees open() would pick by the documented rule, with the reason, and refuses what cannot work", () => {
  // the tiny model has 2 heads: cfg-parallel on even ranks (rule 1), Ulysses gcd(ranks per branch, 2) (rule 2), ring the rest (rule 3)
  for (const [ranks, cfg, ulysses, ring] of [[3, 1, 1, 3], [6, 2, 1, 3], [8, 2, 2, 2]] as const) {
    const r = wanlab(["inspect", model, "--devices", `cpu:0-${ranks - 1}`, "--layout", "auto", "--height", "48", "--width", "48", "--num-frames", "5", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const m = (JSON.parse(r.stdout) as { memory: { ulysses: number; ring: number; cfg: number; layout_reason?: string } }).memory;
    assert.deepEqual([m.cfg, m.ulysses, m.ring], [cfg, ulysses, ring], `${ranks} ranks`);
    assert.match(m.layout_reason!, new RegExp(`^auto: ${cfg === 2 ? "cfg-parallel 2" : "no cfg-parallel"}: ${ranks} ranks are ${cfg === 2 ? "even" : "odd"} \\(rule 1\\)`));
  }
  const text = wanlab(["inspect", model, "--devices", "cpu:0-3", "--layout", "auto"]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /ulysses 2 × ring 1 × cfg 2/);
  assert.match(text.stdout, /^layout auto: cfg-parallel 2: 4 ranks are even \(rule 1\); ulysses 2: the largest degree dividing the 2 ranks per branch and the 2 heads \(rule 2\)$/m);
  const both = wanlab(["inspect", model, "--devices", "cpu:0-3", "--layout", "auto", "--ring", "2"]);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /layout auto chooses ulysses, ring and cfg parallel itself/);
  // 16×16×1 is one token: 3 sequence-parallel ranks per branch cannot split it
  const tiny = wanlab(["inspect", model, "--devices", "cpu:0-5", "--layout", "auto", "--height", "16", "--width", "16", "--num-frames", "1"]);
  assert.equal(tiny.status, 1);
  assert.match(tiny.stderr, /layout ulysses 1 x ring 3 x cfg 2: 3 sequence-parallel ranks but only 1 tokens .*ranks beyond tokens/);
});

test("checkLinks (wanlab doctor --devices) runs the pre-flight check and measures every collective the engine uses per message size", async () => {
  const r = await checkLinks({ devices: "cpu:0-1", sizes: [4096, 65536], reps: 2 });
  assert.equal(r.world, 2);
  assert.equal(r.nodes.length, 1);
  assert.equal(r.nodes[0]!.devices, "cpu:0,1");
  assert.match(r.nodes[0]!.build, /^libtorch \S+ (CPU-only|CUDA)/);
  assert.deepEqual(r.measures.map((m) => `${m.op} ${m.bytes}`),
    ["all_to_all 4096", "all_to_all 65536", "all_gather 4096", "all_gather 65536", "send/recv 4096", "send/recv 65536"]);
  for (const m of r.measures) assert.ok(m.latency_s > 0 && Math.abs(m.bytes_per_s - m.bytes / m.latency_s) <= 1e-6 * m.bytes_per_s, JSON.stringify(m));
  assert.match(linksText(r), /^ {2}collective +bytes\/rank +latency +bandwidth$/m);
  await assert.rejects(checkLinks({ devices: "cpu" }), /needs at least 2 ranks/);
});

test("a rank with another model is refused by the pre-flight check on every rank, naming it, and both exit", async () => {
  const other = join(dir, "tiny-seed7");
  assert.equal(wanlab(["make-tiny", other, "--seed", "7"]).status, 0);
  const port = await portPair();
  const rank = (k: number, m: string) => new Promise<Run>((res) => {
    const env = { ...process.env, MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port), RANK: String(k), WORLD_SIZE: "2", LOCAL_RANK: String(k) };
    const p = spawn(process.execPath, [cliPath, "generate", ...args.slice(2), "--model", m, "--ulysses", "2", "--rendezvous", "env://",
      "--timeout", "20", "--log-dir", join(dir, `mm-logs${k}`), "--output", join(dir, `mm${k}.mp4`)], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => res({ code, stdout, stderr }));
  });
  const [r0, r1] = await Promise.all([rank(0, model), rank(1, other)]);
  for (const r of [r0, r1]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /pre-flight: node 1 \(rank 1, host [^,]+, cpu:0\) loaded a different model \(fingerprint [0-9a-f]{16} \(\d+ tensors\)\) than node 0 \(rank 0, host [^,]+, cpu:0\) \([0-9a-f]{16} \(\d+ tensors\)\); every node needs the same checkpoint/);
  }
});

// Transports and shared GPUs from the CLI and the API: device lists and --transport values that
// cannot run are refused before the model loads (exit 2, naming the device, the transport or the
// build), and --transport gloo between CPU ranks gives one rank's latents.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import type { EngineReport } from "../src/doctor.js";
import { open } from "../src/engine.js";
import { native } from "../src/native.js";
import { ParamError } from "../src/params.js";
import { cliPath, scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";

const dir = scratch();
const model = join(dir, "tiny");
let build: EngineReport;
const base = () => ["generate", "--model", model, "--prompt", "a boat", "--seed", "5", "--num-inference-steps", "2",
  "--height", "32", "--width", "32", "--num-frames", "5"];

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  build = JSON.parse(await native().doctor()) as EngineReport;
});

test("a GPU listed twice without cuda:KxN is refused before the load, naming the GPU, NCCL and the test syntax", () => {
  for (const [list, gpu] of [["cuda:0,0", 0], ["cuda:0-1,1", 1]] as const) {
    const r = wanlab([...base(), "--devices", list, "--output", join(dir, "dup.mp4")]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^wanlab generate: --devices: device cuda:${gpu} is listed twice in '${list}': NCCL refuses two ranks on one GPU; ` +
      `to test N ranks on GPU ${gpu} write the whole list as cuda:${gpu}xN \\(e\\.g\\. cuda:${gpu}x4\\)`, "m"));
  }
  const cpu = wanlab([...base(), "--devices", "cpu:0x2", "--output", join(dir, "cpu.mp4")]);
  assert.equal(cpu.status, 2, cpu.stderr);
  assert.match(cpu.stderr, /invalid --devices 'cpu:0x2': KxN shares one GPU between N ranks \(cuda:0x4\); CPU ranks are numbered instead \(cpu:0-3 for 4 ranks\)/);
});

test("--devices cuda:0x4 without a visible GPU is refused for that, naming the build, never run on the CPU", (t) => {
  if (build.cuda_devices.length > 0) return t.skip("a GPU is visible: cuda:0x4 runs (the GPU check covers it)");
  const r = wanlab([...base(), "--devices", "cuda:0x4", "--output", join(dir, "shared.mp4")]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, build.libtorch.cuda
    ? /^wanlab generate: --devices 'cuda:0x4': no CUDA device is visible$/m
    : /^wanlab generate: --devices 'cuda:0x4': no CUDA device is visible \(this wanlab build has no CUDA: it links a CPU-only libtorch\)$/m);
});

test("--transport nccl between CPU ranks, or in a build without NCCL, and --transport bogus are refused before the load", () => {
  const nccl = wanlab([...base(), "--devices", "cpu:0-1", "--transport", "nccl", "--output", join(dir, "nccl.mp4")]);
  assert.equal(nccl.status, 2, nccl.stderr);
  assert.match(nccl.stderr, build.libtorch.c10d.nccl
    ? /--transport nccl moves tensors between GPUs, but devices 'cpu:0-1' are CPU ranks, whose collectives run on Gloo/
    : new RegExp(`--transport nccl: this wanlab build has no NCCL \\(${build.libtorch.cuda ? "its CUDA libtorch was built without c10d's NCCL" : "it links a CPU-only libtorch"}`));
  const bogus = wanlab([...base(), "--devices", "cpu:0-1", "--transport", "bogus"]);
  assert.equal(bogus.status, 2, bogus.stderr);
  assert.match(bogus.stderr, /--transport must be one of gloo, nccl, got 'bogus'/);
  const server = wanlab([...base(), "--server", "--transport", "gloo"]);
  assert.equal(server.status, 2, server.stderr);
  assert.match(server.stderr, /--transport applies to a local engine \(or to wanlab serve\), not --server/);
  // serve refuses it the same way (a server that started would be killed at the time limit: status null).
  const serve = spawnSync(process.execPath, [cliPath, "serve", "--model", model, "--devices", "cpu:0-1", "--transport", "nccl", "--port", "0"],
    { encoding: "utf8", timeout: 60_000 });
  assert.equal(serve.status, 2, serve.stderr);
  assert.match(serve.stderr, /--transport nccl/);
});

test("open() refuses a device list or transport as a ParamError on that option", async () => {
  const dup = await open({ model, devices: "cuda:2,2" }).then(() => undefined, (e: unknown) => e);
  assert.ok(dup instanceof ParamError && dup.field === "devices", String(dup));
  assert.match(dup.message, /device cuda:2 is listed twice in 'cuda:2,2': NCCL refuses two ranks on one GPU/);
  const mpi = await open({ model, devices: "cpu:0-1", transport: "mpi" as "gloo" }).then(() => undefined, (e: unknown) => e);
  assert.ok(mpi instanceof ParamError && mpi.field === "transport", String(mpi));
  assert.equal(mpi.message, "transport must be gloo or nccl, got 'mpi'");
});

test("wanlab generate --devices cpu:0-1 --transport gloo gives one rank's latents", () => {
  const one = wanlab([...base(), "--output", join(dir, "one.mp4"), "--save-tensors", join(dir, "one.safetensors")]);
  assert.equal(one.status, 0, one.stderr);
  const two = wanlab([...base(), "--devices", "cpu:0-1", "--ulysses", "2", "--transport", "gloo", "--output", join(dir, "two.mp4"),
    "--save-tensors", join(dir, "two.safetensors")]);
  assert.equal(two.status, 0, two.stderr);
  const a = readSafetensors(join(dir, "one.safetensors")).tensors.latents!.f32!;
  const b = readSafetensors(join(dir, "two.safetensors")).tensors.latents!.f32!;
  assert.ok(relL2(b, a) <= 1e-5, `latents rel L2 ${relL2(b, a)}`);
  // CPU ranks always run on Gloo: the sidecar names the transport only for CUDA ranks, and no shared device.
  const meta = JSON.parse(readFileSync(join(dir, "two.mp4.json"), "utf8")) as { parallel: Record<string, unknown> };
  assert.deepEqual(meta.parallel, { devices: 2, ulysses: 2, ring: 1, cfg: 1 });
});

test("wanlab generate --stop-at-step opens the engine as a whole run does: --transport and --layout reach the device group", () => {
  const fork = (name: string, ...args: string[]) => wanlab([...base(), "--stop-at-step", "1", "--save-tensors", join(dir, name), ...args]);
  // NCCL between CPU ranks (or in a build without it) is refused before the load, as for a whole run.
  const nccl = fork("nccl.fork.safetensors", "--devices", "cpu:0-1", "--ulysses", "2", "--transport", "nccl");
  assert.equal(nccl.status, 2, nccl.stderr);
  assert.match(nccl.stderr, /^wanlab generate: --transport nccl/m);
  // layout auto gives 2 CPU ranks to CFG-parallel (rule 1), where the degrees' default is Ulysses 2.
  const auto = fork("auto.fork.safetensors", "--devices", "cpu:0-1", "--layout", "auto", "--transport", "gloo", "--log-level", "info");
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stderr, /device group: 2 ranks .*ulysses 1 x ring 1 x cfg 2, .*transport gloo/);
  assert.equal(auto.stdout.trim(), join(dir, "auto.fork.safetensors"));
  assert.ok(readSafetensors(join(dir, "auto.fork.safetensors")).tensors.latents, "the fork file holds the latents");
});

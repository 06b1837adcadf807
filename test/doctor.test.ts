// `wanlab doctor` and `wanlab-engine doctor` on this CPU-only build: where runs go and why, the
// engine's facts, ffmpeg found or named as the problem, exit codes. (On a CUDA build the same report
// carries per-device checks; native/tools/gpu-check.sh runs `wanlab-engine doctor` first.)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { defaultEnginePath } from "../src/bench.js";
import type { DoctorReport, EngineReport, LinkReport } from "../src/doctor.js";
import { wanlab } from "./helpers.js";

test("wanlab doctor --json: CPU-only build, runs on the CPU in float32 and says how to get the GPU build", () => {
  const r = wanlab(["doctor", "--json"]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const d = JSON.parse(r.stdout) as DoctorReport;
  assert.equal(d.ok, true);
  assert.deepEqual(d.problems, []);
  assert.equal(d.runs_on, "cpu f32");
  assert.equal(d.addon.ok, true);
  const e = d.engine!;
  assert.equal(e.libtorch.cuda, false);
  assert.match(e.libtorch.version, /^\d+\.\d+\.\d+$/);
  assert.equal(e.libtorch.c10d.gloo, true);
  assert.ok(e.libtorch.config.length > 0 && e.cpu.threads >= 1 && e.cpu.hardware_threads >= 1);
  assert.deepEqual(e.auto_devices, { chosen: "cpu", why: "this wanlab build links a CPU-only libtorch" });
  assert.deepEqual(e.cuda_devices, []);
  // the host's memory, and what --budget auto allows on the CPU: available less 1 GB
  assert.ok(e.host_memory.total_bytes >= e.host_memory.available_bytes && e.host_memory.available_bytes > 1e9);
  assert.equal(e.budget_auto?.device, "cpu");
  assert.match(e.budget_auto!.how, /^auto: the host's available [\d.]+ GB less 1\.00 GB$/);
  assert.match(d.message, /^runs on the CPU in float32: this build links libtorch .* without CUDA\. .*WANLAB_TORCH_DIR.*npm run build:native/);
  assert.equal(d.ffmpeg.ok, true);
  assert.match(d.ffmpeg.version!, /^ffmpeg version/);
});

test("wanlab doctor: aligned lines, and a missing ffmpeg is a problem named with its fix (exit 1)", () => {
  const ok = wanlab(["doctor"]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ {2}libtorch +\d+\.\d+\.\d+, CPU only; c10d gloo;/m);
  assert.match(ok.stdout, /^ {2}devices auto +cpu \(this wanlab build links a CPU-only libtorch\)$/m);
  assert.match(ok.stdout, /^ {2}memory +host [\d.]+ GB \([\d.]+ GB available\); --budget auto: [\d.]+ GB on cpu$/m);
  assert.match(ok.stdout, /^ok: runs on the CPU in float32/m);
  const bad = wanlab(["doctor"], { FFMPEG_PATH: "/nonexistent/ffmpeg", PATH: "/nonexistent" });
  assert.equal(bad.status, 1, bad.stderr + bad.stdout);
  assert.match(bad.stdout, /^ {2}ffmpeg +not found: /m);
  assert.match(bad.stdout, /^problem: ffmpeg not found: FFMPEG_PATH \(\/nonexistent\/ffmpeg\): not found;.*Set FFMPEG_PATH/m);
  assert.match(bad.stdout, /^not ok: runs on the CPU/m);
  const extra = wanlab(["doctor", "now"]);
  assert.equal(extra.status, 2);
  assert.match(extra.stderr, /^wanlab doctor: takes no arguments, got 'now'$/m);
});

test("doctor() in a notebook: the same report, printed as its aligned text", async () => {
  const { doctor, doctorText } = await import("../src/doctor.js");
  const { inspect } = await import("node:util");
  const r = await doctor();
  assert.equal(inspect(r), doctorText(r));
  assert.match(inspect(r), /^ {2}devices auto +cpu/m);
  assert.equal(JSON.parse(JSON.stringify(r)).runs_on, "cpu f32");  // the display hook is not data
});

test("wanlab-engine doctor: the engine's half alone (for GPU machines without Node)", () => {
  const r = spawnSync(defaultEnginePath, ["doctor"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const e = JSON.parse(r.stdout) as EngineReport;
  assert.equal(e.ok, true);
  assert.equal(e.runs_on, "cpu f32");
  assert.deepEqual(e.warnings, []);
  const extra = spawnSync(defaultEnginePath, ["doctor", "now"], { encoding: "utf8" });
  assert.equal(extra.status, 2);
  assert.match(extra.stderr, /doctor takes no arguments/);
});

test("wanlab doctor --devices cpu:0-1 --json: the pre-flight check, then every collective's latency and bytes/s per message size", () => {
  const r = wanlab(["doctor", "--devices", "cpu:0-1", "--timeout", "20", "--json"]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const l = JSON.parse(r.stdout) as LinkReport;
  assert.equal(l.world, 2);
  assert.equal(l.node_rank, 0);
  assert.deepEqual(l.nodes.map((n) => [n.node, n.first_rank, n.devices]), [[0, 0, "cpu:0,1"]]);
  assert.ok(l.meet_s >= 0 && l.preflight_collectives_s > 0);
  const sizes = [4096, 65536, 1 << 20, 16 << 20];
  assert.deepEqual(l.measures.map((m) => `${m.op} ${m.bytes}`),
    ["all_to_all", "all_gather", "send/recv"].flatMap((op) => sizes.map((b) => `${op} ${b}`)));
  for (const m of l.measures) assert.ok(m.latency_s > 0 && Math.abs(m.bytes_per_s * m.latency_s - m.bytes) <= 1e-6 * m.bytes, JSON.stringify(m));
  // the link check's flags alone are a usage error: they go with --devices or --rendezvous
  const alone = wanlab(["doctor", "--timeout", "5"]);
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--timeout goes with --devices or --rendezvous \(the link check\)/);
  const one = wanlab(["doctor", "--devices", "cpu"]);
  assert.equal(one.status, 1);
  assert.match(one.stderr, /^wanlab doctor: .*needs at least 2 ranks/m);
});

test("doctor --devices --transport: the link check opens its ranks as an engine would, and refuses a transport this build cannot run", () => {
  const gloo = wanlab(["doctor", "--devices", "cpu:0-1", "--transport", "gloo", "--timeout", "20", "--json"]);
  assert.equal(gloo.status, 0, gloo.stderr + gloo.stdout);
  assert.equal((JSON.parse(gloo.stdout) as LinkReport).world, 2);
  const nccl = wanlab(["doctor", "--devices", "cpu:0-1", "--transport", "nccl"]);
  assert.equal(nccl.status, 1);
  assert.match(nccl.stderr, /^wanlab doctor: transport nccl: this wanlab build has no NCCL \(it links a CPU-only libtorch\)/m);
  const engine = spawnSync(defaultEnginePath, ["doctor", "--devices", "cpu:0-1", "--transport", "nccl"], { encoding: "utf8" });
  assert.equal(engine.status, 1);
  assert.match(engine.stderr, /transport nccl: this wanlab build has no NCCL/);
  // a GPU shared by several ranks (a test mode) is a CUDA list: refused on this build, naming it
  const shared = wanlab(["doctor", "--devices", "cuda:0x2"]);
  assert.equal(shared.status, 1);
  assert.match(shared.stderr, /cuda:0x2/);
  const alone = wanlab(["doctor", "--transport", "gloo"]);
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--transport goes with --devices or --rendezvous/);
});

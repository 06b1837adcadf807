// native/tools/gpu-check.sh, the script a lent GPU machine runs first, exercised here with
// stand-ins for nvidia-smi and python3 on this CPU-only build (its existing build directory, so
// nothing is rebuilt): every step runs and is logged, the CUDA-only steps fail fast instead of
// hanging, and what comes back from a device run (at most 8 files) is what it writes: the log and
// one archive of the steps' JSON.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { root, scratch } from "./helpers.js";

// nvidia-smi, and python3 asked about its torch (the CUDA wheel the script builds against), stand
// in for a GPU machine's; python3 asked anything else is the real one.
function standIns(bin: string): void {
  writeFileSync(join(bin, "nvidia-smi"), '#!/bin/sh\necho "stand-in GPU, 0 MiB"\n');
  writeFileSync(join(bin, "python3"), '#!/bin/sh\ncase "$2" in *"import torch"*) echo "stand-in python3"; exit 0;; esac\n' +
    `exec ${spawnSync("sh", ["-c", "command -v python3"], { encoding: "utf8" }).stdout.trim()} "$@"\n`);
  for (const name of ["nvidia-smi", "python3"]) chmodSync(join(bin, name), 0o755);
}

const build = join(root, "native", "build");

/** A scratch folder whose bin/ holds the stand-ins. */
function standInDir(): { dir: string; bin: string } {
  const dir = scratch();
  const bin = join(dir, "bin");
  mkdirSync(bin);
  standIns(bin);
  return { dir, bin };
}

/** gpu-check.sh on this CPU build (its existing build directory), the stand-ins first on PATH. */
function gpuCheck(bin: string, env: Record<string, string>, timeout?: number) {
  return spawnSync("bash", [join(root, "native", "tools", "gpu-check.sh"), build], {
    encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env }, timeout });
}

test("gpu-check.sh: doctor, the device tests and every step, logged; OUT_DIR holds log.txt and results.tgz", () => {
  const { dir, bin } = standInDir();
  const out = join(dir, "out");
  const r = gpuCheck(bin, { OUT_DIR: out }, 300_000);
  for (const made of ["tiny", "results"]) rmSync(join(build, made), { recursive: true, force: true });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ["log.txt", "results.tgz"]);
  const steps = ["parity_tiny", "elementwise_1.3B", "dit_1.3B_480p", "dit_1.3B_480p_aten", "t2v_1.3B_480p", "t2v_1.3B_480p_budget3G",
    "t2v_1.3B_480p_f8_t5_offload_v2v"];
  const unpacked = join(dir, "results");
  mkdirSync(unpacked);
  const tar = spawnSync("tar", ["xzf", join(out, "results.tgz"), "-C", unpacked], { encoding: "utf8" });
  assert.equal(tar.status, 0, tar.stderr);
  assert.deepEqual(readdirSync(unpacked).sort(), ["doctor", ...steps].map((s) => `${s}.json`).sort());
  const doctor = JSON.parse(readFileSync(join(unpacked, "doctor.json"), "utf8")) as { runs_on: string };
  assert.equal(doctor.runs_on, "cpu f32");
  const log = readFileSync(join(out, "log.txt"), "utf8");
  assert.match(log, /^rc=0 doctor /m);
  for (const t of ["nccl_one_rank_collectives", "attention_parts_merge_to_whole_attention_on_each_device",
    "rope_kernel_on_cuda_equals_its_host_emulation", "bf16_path_tracks_float32_on_cpu", "device_lists_parse_and_auto_says_what_it_chose",
    "f8_block_linears_stay_f8_and_give_the_widened_latents", "f8_scaled_block_linears_give_the_dequantized_latents",
    "umt5_offloaded_weights_give_the_resident_output", "memory_model_t5_offload_holds_the_text_encoder_while_encoding_only",
    "tea_cache_skips_the_steps_diffsynth_skips_and_matches_its_latents", "v2v_matches_diffsynth_input_video_and_denoising_strength"])
    assert.match(r.stdout + log, new RegExp(`ok {3}${t}`), t);
  for (const step of steps) assert.match(log, new RegExp(`^rc=1 ${step} `, "m"), `${step} fails fast without CUDA`);
  assert.match(log, /^done \d+s$/m);
  assert.ok(!existsSync(join(build, "tiny")));

  // GPU_CHECK=14b: a second call, the 14B steps only (doctor first), on the build already there
  const out14 = join(dir, "out14");
  const r14 = gpuCheck(bin, { OUT_DIR: out14, GPU_CHECK: "14b" }, 120_000);
  for (const made of ["tiny", "results"]) rmSync(join(build, made), { recursive: true, force: true });
  assert.equal(r14.status, 0, r14.stdout + r14.stderr);
  const log14 = readFileSync(join(out14, "log.txt"), "utf8");
  for (const step of ["t2v_14B_720p", "t2v_14B_480p_budget24G", "t2v_14B_480p_f8"]) assert.match(log14, new RegExp(`^rc=1 ${step} `, "m"));
  assert.doesNotMatch(log14, /parity_tiny/);
  const bad = gpuCheck(bin, { OUT_DIR: join(dir, "bad"), GPU_CHECK: "all" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /GPU_CHECK must be base, 14b or group, got 'all'/);
});

test("gpu-check.sh GPU_CHECK=group: each layout of ranks sharing a device against one rank, then the group's pre-flight and links", () => {
  const { dir, bin } = standInDir();
  const out = join(dir, "out");
  // GROUP_DEVICE=cpu: the same set on CPU ranks in float32, where every layout must give one rank's latents.
  const r = gpuCheck(bin, { OUT_DIR: out, GPU_CHECK: "group", GROUP_DEVICE: "cpu" }, 400_000);
  const unpacked = join(dir, "results");
  mkdirSync(unpacked);
  const tar = spawnSync("tar", ["xzf", join(out, "results.tgz"), "-C", unpacked], { encoding: "utf8" });
  for (const made of ["tiny", "results", "request.json", "request-tea.json"]) rmSync(join(build, made), { recursive: true, force: true });
  for (const f of readdirSync(build)) if (f.endsWith(".safetensors")) rmSync(join(build, f));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(tar.status, 0, tar.stderr);
  const log = readFileSync(join(out, "log.txt"), "utf8");
  assert.match(log, /ok {3}transport_/);
  const parity = readFileSync(join(unpacked, "group_parity.jsonl"), "utf8").trim().split("\n")
    .map((l) => JSON.parse(l) as { label: string; rel_l2?: number; error?: string });
  assert.deepEqual(parity.map((p) => p.label), ["one vs one_f32_cpu", ...["u2", "r2", "u2r2", "r4", "cfg_u2", "u2_sharded"].map((l) => `${l} vs one`),
    "u2r2_tea vs one_tea"]);
  for (const p of parity) assert.ok(p.rel_l2 !== undefined && p.rel_l2 <= 1e-5, `${p.label}: ${p.rel_l2 ?? p.error}`);
  for (const n of [2, 4]) {
    assert.match(log, new RegExp(`^rc=0 preflight_links_${n} `, "m"));
    const links = JSON.parse(readFileSync(join(unpacked, `preflight_links_${n}.json`), "utf8")) as { world: number; measures: { op: string }[] };
    assert.equal(links.world, n);
    assert.deepEqual([...new Set(links.measures.map((m) => m.op))].sort(), ["all_gather", "all_to_all", "send/recv"]);
  }
  assert.match(log, /^rc=0 projection_tiny /m);
  const projection = JSON.parse(readFileSync(join(unpacked, "projection_tiny.json"), "utf8")) as { layouts: { gpus: number }[] };
  assert.deepEqual([...new Set(projection.layouts.map((l) => l.gpus))].sort((a, b) => a - b), [1, 2, 4, 8, 16]);
  assert.match(log, /^done \d+s$/m);
});

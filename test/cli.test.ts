// The wanlab CLI as a user runs it: make-tiny in every layout, inspect (text and JSON),
// the embedded default, and clear errors for bad input.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { scratch, wanlab } from "./helpers.js";
import type { InspectReport } from "../src/index.js";

const dir = scratch();

describe("make-tiny and inspect", () => {
  for (const layout of ["official", "sharded", "diffusers", "comfyui", "comfyui-fp8"]) {
    test(`${layout} layout round trip`, () => {
      const out = join(dir, layout);
      const made = wanlab(["make-tiny", out, "--layout", layout, "--seed", "3"]);
      assert.equal(made.status, 0, made.stderr);
      assert.match(made.stderr, /make-tiny .*wrote/);
      const r = wanlab(["inspect", out, "--json"]);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout) as InspectReport;
      assert.equal(report.layout, layout === "sharded" ? "official" : layout === "comfyui-fp8" ? "comfyui" : layout);
      assert.equal(report.components.dit.arch.dim, 256);
      assert.equal(report.components.dit.arch.num_heads, 2);
      assert.equal(report.components.dit.arch.num_layers, 2);
      assert.equal(report.components.t5.arch.dim, 64);
      assert.equal(report.components.vae.arch.z_dim, 16);
      assert.equal(report.components.vae.tensors, 194);
      assert.equal(report.tokenizer.found, true);
      assert.equal(report.tokenizer.model, "Unigram");
      // the three components together, as on disk
      const sum = report.components.dit.bytes_on_disk + report.components.t5.bytes_on_disk + report.components.vae.bytes_on_disk;
      assert.equal(report.bytes_on_disk, sum);
    });
  }

  test("official layout has the release's files and dtypes", () => {
    const out = join(dir, "official");
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual(Object.keys(cfg).sort(), ["_class_name", "_diffusers_version", "dim", "eps", "ffn_dim", "freq_dim", "in_dim", "model_type", "num_heads", "num_layers", "out_dim", "text_len"]);
    assert.equal(cfg._class_name, "WanModel");
    const r = JSON.parse(wanlab(["inspect", out, "--json"]).stdout) as InspectReport;
    assert.deepEqual(r.components.dit.dtypes, { F32: 69 });
    assert.deepEqual(r.components.t5.dtypes, { BF16: 22 });
    assert.deepEqual(r.components.vae.dtypes, { F32: 194 });
    assert.deepEqual(r.components.t5.files.map((f) => f.path), ["models_t5_umt5-xxl-enc-bf16.pth"]);
    assert.deepEqual(r.components.vae.files.map((f) => f.path), ["Wan2.1_VAE.pth"]);
    assert.equal(r.tokenizer.dir, join(out, "google", "umt5-xxl"));
  });

  test("comfyui-fp8 is ComfyUI's scaled-fp8 repack: float8 block linears, each with its scale", () => {
    const out = join(dir, "comfyui-fp8");
    const r = JSON.parse(wanlab(["inspect", out, "--json", "--devices", "cuda:0"]).stdout) as InspectReport;
    assert.deepEqual(r.components.dit.files.map((f) => f.path), ["diffusion_models/wan2.1_t2v_tiny_fp8_scaled.safetensors"]);
    assert.deepEqual(r.components.t5.files.map((f) => f.path), ["text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"]);
    // 2 blocks × 10 DiT linears, 2 × 7 UMT5 linears; the scales are consumed, not counted as tensors
    assert.deepEqual(r.components.dit.dtypes, { BF16: 49, F8_E4M3: 20 });
    assert.equal(r.components.dit.scaled_f8, 20);
    assert.deepEqual(r.components.t5.dtypes, { F16: 8, F8_E4M3: 14 });
    assert.equal(r.components.t5.scaled_f8, 14);
    assert.equal(r.memory.weight_dtype, "BF16 + F8 block linears");
    const text = wanlab(["inspect", out]).stdout;
    assert.match(text, /BF16×49 F8_E4M3×20 \(20 scaled\)/);
  });

  test("text output is an aligned report", () => {
    const r = wanlab(["inspect", join(dir, "diffusers"), "--devices", "cuda:0-3", "--ulysses", "2", "--ring", "2"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /diffusers layout/);
    assert.match(r.stdout, /^dit +\d/m);
    assert.match(r.stdout, /ulysses 2 × ring 2/);
    assert.match(r.stdout, /DiT weights on the device \(BF16, every rank\)/);
    assert.match(r.stdout, /peak, other ranks/);
  });

  test("memory estimate splits tokens across ranks", () => {
    const one = JSON.parse(wanlab(["inspect", join(dir, "official"), "--json"]).stdout) as InspectReport;
    const four = JSON.parse(wanlab(["inspect", join(dir, "official"), "--json", "--devices", "cpu:0-3"]).stdout) as InspectReport;
    assert.equal(one.memory.tokens, 21 * 30 * 52);
    assert.equal(four.memory.tokens_per_rank, Math.ceil((21 * 30 * 52) / 4));
    assert.equal(four.memory.ulysses, 2); // tiny DiT has 2 heads: Ulysses is capped, ring takes the rest
    assert.equal(four.memory.ring, 2);
    assert.ok(four.memory.dit_activation_bytes < one.memory.dit_activation_bytes);
    assert.equal(four.memory.dit_weights_bytes, one.memory.dit_weights_bytes);
    // four CPU ranks are threads of one host: together they hold four ranks' DiT activations, the
    // figure a --budget is held to, as the engine holds it (t2v_memory_plan_counts_cpu_ranks_sharing_the_host
    // checks the arithmetic; the tiny model's peak is its VAE decode, which one rank runs)
    assert.equal(one.memory.host_ranks_peak_bytes, undefined);
    assert.ok(four.memory.host_ranks_peak_bytes! >= four.memory.rank0_peak_bytes);
    assert.match(wanlab(["inspect", join(dir, "official"), "--devices", "cpu:0-3"]).stdout, /peak, the 4 CPU ranks together \(one host\) +[\d.]+ [kMG]?B/);
  });

  test("--budget: the largest --persistent-params that fits, -1 when all fits, -2 when nothing does", () => {
    // 64×64×5 on one CUDA device (inspect needs no GPU): the tiny DiT's two blocks decide between
    // a plan that fits and one that does not.
    const args = ["inspect", join(dir, "official"), "--json", "--devices", "cuda:0", "--height", "64", "--width", "64", "--num-frames", "5"];
    // exit 0 when the plan fits (with streaming or not), 1 when nothing fits the budget
    const run = (...extra: string[]) => {
      const r = wanlab([...args, ...extra]);
      const json = JSON.parse(r.stdout) as InspectReport;
      assert.equal(r.status, json.memory.budget && json.memory.budget.persistent_params === -2 ? 1 : 0, r.stderr);
      return json.memory;
    };
    const resident = run();
    const streamed = run("--persistent-params", "0");
    assert.equal(resident.dit_streamed_bytes, 0);
    assert.ok(streamed.dit_streamed_bytes > 0 && streamed.dit_weights_bytes < resident.dit_weights_bytes);
    // what leaves the GPU goes to host memory: the streamed blocks pinned in bf16, a CPU T5 in float32
    assert.equal(resident.host_bytes, 0);
    assert.equal(streamed.host_pinned_bytes, resident.dit_weights_bytes - streamed.dit_weights_bytes);
    const t5cpu = run("--t5-device", "cpu");
    assert.equal(t5cpu.t5_weights_bytes, 0);
    assert.equal(t5cpu.host_t5_bytes, resident.t5_weights_bytes * 2);
    assert.equal(t5cpu.host_bytes, t5cpu.host_t5_bytes + t5cpu.host_activation_bytes);
    const shown = wanlab(args.filter((a) => a !== "--json").concat("--persistent-params", "0", "--t5-device", "cpu"));
    assert.match(shown.stdout, /host memory beside the GPU +[\d.]+ [kMG]?B\n +streamed DiT blocks \(pinned\) +[\d.]+ [kMG]?B\n +T5 weights \(float32\) +[\d.]+ [kMG]?B\n +T5 activations \(float32\) +[\d.]+ [kMG]?B/);
    assert.ok(streamed.rank0_peak_bytes < resident.rank0_peak_bytes);
    // --t5-offload: the text encoder's weights on the GPU while encoding only, pinned on the host between prompts
    const offload = run("--t5-offload");
    assert.deepEqual([offload.t5_weights_bytes, offload.t5_streamed_bytes], [0, resident.t5_weights_bytes]);
    assert.equal(offload.stages.encode, resident.stages.encode);
    assert.equal(resident.stages.denoise - offload.stages.denoise, resident.t5_weights_bytes);
    assert.deepEqual([offload.host_t5_bytes, offload.host_pinned_bytes], [resident.t5_weights_bytes, 0]);
    const shownOffload = wanlab(args.filter((a) => a !== "--json").concat("--t5-offload"));
    assert.match(shownOffload.stdout, /T5 weights \(rank 0\), while encoding only \(offloaded\) +[\d.]+ [kMG]?B/);
    assert.match(shownOffload.stdout, /T5 weights \(offloaded, pinned\) +[\d.]+ [kMG]?B/);
    const cpuOffload = wanlab(["inspect", join(dir, "official"), "--t5-offload", "--t5-device", "cpu", "--devices", "cuda:0"]);
    assert.equal(cpuOffload.status, 1);
    assert.match(cpuOffload.stderr, /--t5-offload keeps a CUDA text encoder's weights in host memory between prompts; here it runs on the CPU \(devices 'cuda:0', --t5-device cpu\)/);
    // a budget between the streamed plan and the all-resident one
    const budget = Math.round((resident.rank0_peak_bytes + streamed.rank0_peak_bytes) / 2);
    const m = run("--budget", String(budget));
    assert.equal(m.budget!.bytes, budget);
    assert.equal(m.budget!.fits, false);
    assert.ok(m.budget!.persistent_params >= 0, JSON.stringify(m.budget));
    const planned = run("--persistent-params", String(m.budget!.persistent_params));
    assert.ok(planned.stages.denoise <= budget, `denoise ${planned.stages.denoise} > budget ${budget}`);
    assert.ok(planned.rank0_peak_bytes <= budget, `peak ${planned.rank0_peak_bytes} > budget ${budget}`);
    assert.ok(planned.dit_streamed_bytes > 0);
    const all = run("--budget", "1G");
    assert.deepEqual([all.budget!.fits, all.budget!.persistent_params], [true, -1]);
    const none = run("--budget", String(streamed.rank0_peak_bytes - 1));
    assert.deepEqual([none.budget!.fits, none.budget!.persistent_params], [false, -2]);
    assert.match(none.budget!.note, /does not fit even with every DiT block streamed/);
    // the terminal report has the budget line
    const text = wanlab(args.filter((a) => a !== "--json").concat("--budget", String(budget)));
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^  budget ${(budget / 1e6).toFixed(2)} MB +fits with --persistent-params ${m.budget!.persistent_params}$`, "m"));
    assert.match(wanlab(args.filter((a) => a !== "--json").concat("--budget", "1G")).stdout, /^  budget 1\.00 GB +fits$/m);
    // the longest video within the budget at Wan's two sizes: streaming never fits less, tiling neither
    const six = run("--budget", "6G").budget!.longest;
    assert.deepEqual(six.map((l) => `${l.height}x${l.width}${l.tiled ? " tiled" : ""}`), ["480x832", "480x832 tiled", "720x1280", "720x1280 tiled"]);
    for (const l of six) assert.ok(l.streamed_frames >= l.resident_frames && (l.resident_frames - 1) % 4 === 0 || l.resident_frames === 0, JSON.stringify(l));
    assert.ok(six[3]!.resident_frames >= six[2]!.resident_frames);
    assert.match(wanlab(args.filter((a) => a !== "--json").concat("--budget", "6G")).stdout, /^ {4}longest 720×1280 tiled +\d+ frames/m);
  });

  test("--budget and --persistent-params usage errors", () => {
    let r = wanlab(["inspect", join(dir, "official"), "--devices", "cuda:0", "--budget", "12X"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--budget must be bytes like 24G, 7e9 or 7000000000, or auto, got '12X'/);
    // auto reads the device's memory from this machine: the host's here, no GPU to read
    const auto = JSON.parse(wanlab(["inspect", join(dir, "official"), "--json", "--budget", "auto"]).stdout) as InspectReport;
    assert.match(auto.memory.budget!.auto, /^auto: the host's available [\d.]+ GB less 1\.00 GB$/);
    assert.ok(auto.memory.budget!.bytes > 0 && auto.memory.budget!.fits);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "cuda:0", "--budget", "auto"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--budget auto reads cuda:0's memory, and this machine sees 0 CUDA devices; give the budget in bytes/);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "cuda:0", "--persistent-params=-1"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--persistent-params must be a count/);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "cpu", "--persistent-params", "1G"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--persistent-params streams DiT blocks to a CUDA device/);
  });
});

describe("bad input", () => {
  test("unknown command and options are usage errors", () => {
    assert.equal(wanlab(["frobnicate"]).status, 2);
    const r = wanlab(["make-tiny", join(dir, "x"), "--colour", "red"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /colour/);
  });

  test("bad option values name the option and the allowed values", () => {
    let r = wanlab(["make-tiny", join(dir, "y"), "--layout", "gguf"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--layout must be one of official, sharded, diffusers, comfyui, comfyui-fp8, got 'gguf'/);
    r = wanlab(["make-tiny", join(dir, "y"), "--seed=-4"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--seed must be between 0 and 9007199254740991, got -4/);
    r = wanlab(["make-tiny", join(dir, "y"), "--seed", "1.5"]);
    assert.match(r.stderr, /--seed must be an integer, got '1.5'/);
    r = wanlab(["inspect", join(dir, "official"), "--height", "481"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /multiples of 16/);
    r = wanlab(["inspect", join(dir, "official"), "--num-frames", "80"]);
    assert.match(r.stderr, /num_frames must be 4k\+1/);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "tpu:0"]);
    assert.match(r.stderr, /device type must be cpu or cuda/);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "cpu:0-3", "--ulysses", "3"]);
    assert.match(r.stderr, /must equal the number of devices \(4\)/);
    r = wanlab(["inspect", join(dir, "official"), "--devices", "cpu:0-3", "--ulysses", "4", "--ring", "1"]);
    assert.match(r.stderr, /ulysses degree 4 does not divide the DiT's 2 heads/);
  });

  test("a directory that is no model lists the layouts", () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    writeFileSync(join(empty, "notes.txt"), "x");
    const r = wanlab(["inspect", empty]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is not a Wan2.1 model directory/);
    assert.match(r.stderr, /official:/);
    assert.match(r.stderr, /diffusers:/);
    assert.match(r.stderr, /comfyui:/);
  });

  test("make-tiny refuses to overwrite a non-empty directory", () => {
    const r = wanlab(["make-tiny", join(dir, "official")]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already exists and is not an empty directory/);
  });

  test("inspect_reports_a_missing_tokenizer_json_as_a_problem_as_generate_refuses_the_model", () => {
    const out = join(dir, "no-tokenizer");
    assert.equal(wanlab(["make-tiny", out]).status, 0);
    const tokenizer = join(out, "google", "umt5-xxl", "tokenizer.json");
    rmSync(tokenizer);
    const r = wanlab(["inspect", out]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^wanlab inspect: .*tokenizer\.json/);
    assert.ok(r.stderr.includes(join(out, "google", "umt5-xxl")), r.stderr);
    // the report itself (when the engine's inspect does not refuse the folder first) lists it as a problem
    if (r.stdout) {
      const problem = `tokenizer: loadTokenizer: no tokenizer.json in ${join(out, "google", "umt5-xxl")}`;
      assert.equal(r.stderr.trim(), `wanlab inspect: ${problem}`);
      assert.match(r.stdout, /problems \(generate would refuse this model\)\n {2}tokenizer: loadTokenizer: no tokenizer\.json in/);
      const json = wanlab(["inspect", out, "--json"]);
      assert.equal(json.status, 1);
      assert.deepEqual((JSON.parse(json.stdout) as InspectReport).problems, [problem]);
    }
    // generate refuses it with the same words
    const g = wanlab(["generate", "--model", out, "--prompt", "x", "--height", "16", "--width", "16", "--num-frames", "1", "--num-inference-steps", "1",
      "--output", join(dir, "no-tokenizer.mp4")]);
    assert.equal(g.status, 1);
    assert.match(g.stderr, /loadTokenizer: no tokenizer\.json in/);
    // a tokenizer.json that is no JSON object: both refuse it naming the file
    writeFileSync(tokenizer, "[1]");
    const bad = wanlab(["inspect", out]);
    assert.equal(bad.status, 1);
    // (the engine's own inspect may find it first; either way the file is named)
    assert.match(bad.stderr, /tokenizer\.json(: the tokenizer\.json is an array of 1 element,| must hold a JSON object, got an array)/);
    // a clean model has no problems
    assert.deepEqual((JSON.parse(wanlab(["inspect", join(dir, "official"), "--json"]).stdout) as InspectReport).problems, []);
  });

  test("a truncated checkpoint is named", () => {
    const out = join(dir, "truncated");
    assert.equal(wanlab(["make-tiny", out]).status, 0);
    const f = join(out, "diffusion_pytorch_model.safetensors");
    const bytes = readFileSync(f);
    writeFileSync(f, bytes.subarray(0, bytes.length >> 1));
    const r = wanlab(["inspect", out]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /diffusion_pytorch_model\.safetensors/);
  });
});

test("demo makes the embedded default model once and generates a video from it", () => {
  const home = join(dir, "home");
  const out = join(dir, "demo.mp4");
  const first = wanlab(["demo", "--output", out], { WANLAB_HOME: home });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout.trim(), out);
  assert.match(first.stderr, /embedded default model: ready at/);
  assert.match(first.stderr, /wrote .*demo\.mp4 \(9 frames, 128×128, seed 42\)/);
  // it says its model's weights are random, and ends with the next three things to try, as commands
  assert.match(first.stderr, /^wanlab demo: using the embedded tiny model; its weights are random, so the video is noise-like$/m);
  const next = first.stderr.slice(first.stderr.indexOf("next, try"));
  assert.match(next, /^ {2}a notebook +npx wanlab kernel install && jupyter lab notebooks\/01-quickstart\.ipynb$/m);
  assert.match(next, /^ {2}a server job +npx wanlab serve &$/m);
  assert.match(next, /^ +npx wanlab generate --server --prompt "[^"]+" --seed 7 \\\n +--height 128 --width 128 --num-frames 9 --steps 10$/m);
  assert.match(next, /^ {2}a sweep +npx wanlab sweep --prompt "a cat" --cfg 3,5,7 --seeds 1,2 --out runs\/sweep \\\n +--height 128 --width 128 --num-frames 9 --steps 10$/m);
  for (const line of next.split("\n")) assert.ok(line.length <= 100, line);
  assert.ok(readFileSync(out).length > 1000);
  const second = wanlab(["demo", "--output", out], { WANLAB_HOME: home });
  assert.equal(second.status, 0);
  assert.doesNotMatch(second.stderr, /writing/);
});

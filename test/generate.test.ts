// Text-to-video through the TypeScript API and the CLI, against DiffSynth-Studio's loop
// (test/golden/data/t2v.safetensors, made by test/golden/make_t2v.py): the tokenizer, the
// engine and the output files, end to end.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CancelledError, open, type EngineLab } from "../src/engine.js";
import { statsFigure } from "../src/lab.js";
import { ParamError, teaCacheModelIds } from "../src/params.js";
import { readInputVideo } from "../src/video/read.js";
import { root, scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";

const dir = scratch();
const model = join(dir, "tiny");
const golden = readSafetensors(join(root, "test", "golden", "data", "t2v.safetensors"));
let lab: EngineLab;

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  lab = await open({ model });
});
after(async () => lab?.close());

describe("API: whole generations match DiffSynth", () => {
  for (const name of ["cfg_nonsquare", "big_seed_chinese", "tiled_decode"]) {
    test(name, async () => {
      const p = JSON.parse(golden.metadata[name]!);
      const r = await lab.generate(
        {
          prompt: p.prompt,
          negativePrompt: p.negative_prompt,
          seed: BigInt(p.seed),
          height: p.height,
          width: p.width,
          numFrames: p.num_frames,
          numInferenceSteps: p.num_inference_steps,
          cfgScale: p.cfg_scale,
          sigmaShift: p.sigma_shift,
          tiled: p.tiled,
          ...(p.tiled ? { tileSize: p.tile_size, tileStride: p.tile_stride } : {}),
        },
        { returnTensors: true },
      );
      const g = golden.tensors;
      assert.equal(r.promptTokens, Number(g[`${name}.prompt_mask`]!.i64!.reduce((a, b) => a + b, 0n)));
      assert.deepEqual(r.tensors!.noise.data, g[`${name}.noise`]!.f32, "noise is bit-identical");
      const lat = relL2(r.tensors!.latents.data, g[`${name}.latents`]!.f32!);
      const vid = relL2(r.tensors!.video.data, g[`${name}.video`]!.f32!);
      assert.ok(lat <= 1e-4, `latents rel L2 ${lat}`);
      assert.ok(vid <= 1e-3, `video rel L2 ${vid}`);
      assert.deepEqual(r.tensors!.video.shape, g[`${name}.video`]!.shape);
      assert.equal(r.video.frames.length, p.num_frames * p.height * p.width * 3);
      assert.equal(r.params.seed, BigInt(p.seed));
    });
  }
});

describe("API behaviour", () => {
  test("an AbortSignal cancels at a step boundary and the model stays loaded", async () => {
    const controller = new AbortController();
    await assert.rejects(
      lab.generate({ prompt: "a dog", seed: 1, height: 32, width: 32, numFrames: 1, numInferenceSteps: 50 }, {
        signal: controller.signal,
        onProgress: (e) => e.stage === "denoise" && e.step === 3 && controller.abort(),
      }),
      (e: unknown) => e instanceof CancelledError && /cancelled at step \d+\/50/.test((e as Error).message),
    );
    const again = await lab.generate({ prompt: "a dog", seed: 1, height: 32, width: 32, numFrames: 1, numInferenceSteps: 2 });
    assert.equal(again.video.numFrames, 1);
  });

  test("the event loop keeps running while the engine computes", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    await lab.generate({ prompt: "a dog", seed: 3, height: 64, width: 64, numFrames: 5, numInferenceSteps: 6 });
    clearInterval(timer);
    assert.ok(ticks > 3, `only ${ticks} timer ticks during generation`);
  });

  test("bad parameters are rejected before any work, naming the field", async () => {
    await assert.rejects(lab.generate({ prompt: "x", height: 100 }), /height must be a multiple of 16, got 100/);
    await assert.rejects(lab.generate({ prompt: "x", numFrames: 8 }), /numFrames must be 4k\+1/);
    await assert.rejects(lab.generate({ prompt: "x", seed: -1 }), /seed must be an integer from 0 to 2\^64-1/);
    await assert.rejects(lab.generate({ prompt: "x", seed: (1n << 64n) }), /seed must be an integer from 0 to 2\^64-1/);
    await assert.rejects(lab.generate({ prompt: "x", cfgScale: 2, guidanceScale: 3 }), /same parameter/);
  });

  test("no seed: a random one is drawn and returned", async () => {
    const a = await lab.generate({ prompt: "x", height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 });
    const b = await lab.generate({ prompt: "x", height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 });
    assert.notEqual(a.params.seed, b.params.seed);
  });

  test("TeaCache: the steps it skips reuse the blocks' residual; no calibration for the model is a ParamError before any work", async () => {
    const p = { prompt: "a dog", seed: 5, height: 16, width: 16, numFrames: 1, numInferenceSteps: 8 };
    // The engine names its calibrations: the same ids as the API's own check (params.ts) accepts.
    await assert.rejects(lab.generate({ ...p, teaCacheL1Thresh: 0.1 }),
      (e: unknown) => e instanceof ParamError && e.field === "teaCacheModelId" && /is neither Wan2\.1-T2V-1\.3B nor 14B/.test(e.message) &&
        e.message.endsWith(`give the calibration to use (${teaCacheModelIds.join(", ")})`));
    await assert.rejects(lab.generate({ ...p, teaCacheModelId: "Wan2.1-T2V-14B" }), /teaCacheModelId is given without teaCacheL1Thresh/);
    const full = await lab.generate(p);
    const tea = await lab.generate({ ...p, teaCacheL1Thresh: 0.1, teaCacheModelId: "Wan2.1-T2V-1.3B" });
    // The tiny model's random time MLP moves t_mod by 60-130 % a step, where the 1.3B calibration
    // is far negative: every step but the first and the last reuses (tea_cache_test.cpp checks
    // the decisions and the latents against DiffSynth's own TeaCache on a smoother tiny model).
    assert.deepEqual(tea.timings.tea_cache_skipped_steps, [1, 2, 3, 4, 5, 6]);
    assert.equal(full.timings.tea_cache_skipped_steps, undefined);
    assert.deepEqual([tea.params.teaCacheL1Thresh, tea.params.teaCacheModelId], [0.1, "Wan2.1-T2V-1.3B"]);
    assert.notDeepEqual(tea.video.frames, full.video.frames);
    const bars = statsFigure(tea).data[0]!;
    assert.deepEqual((bars.marker as { color: string[] }).color.map((c) => c === "#bbb"), [false, true, true, true, true, true, true, false]);
  });

  test("a seed sweep encodes its prompts once: the next requests take them from the cache", async () => {
    const p = { prompt: "a lighthouse in a storm, seen from the sea", negativePrompt: "static", height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 };
    const before = lab.promptCache();
    const runs = [];
    for (const seed of [1, 2, 3]) runs.push(await lab.generate({ ...p, seed }));
    assert.deepEqual(runs.map((r) => r.timings.encode_cached), [0, 2, 2]);
    // a new negative prompt is encoded, the prompt is not; CFG 1 needs the prompt alone
    assert.equal((await lab.generate({ ...p, negativePrompt: "blurry, static", seed: 1 })).timings.encode_cached, 1);
    assert.equal((await lab.generate({ ...p, cfgScale: 1, seed: 1 })).timings.encode_cached, 1);
    const label = statsFigure(runs[1]!).data[1]!.x as string[];
    assert.equal(label[0], "text encoder (2 cached)");
    // the cache's own count: 3 embeddings more (the prompt, two negatives); of these 9 lookups 6 found
    const after = lab.promptCache();
    assert.deepEqual([after.entries - before.entries, after.hits - before.hits, after.misses - before.misses], [3, 6, 3]);
    assert.equal(after.bytes, after.entries * 512 * 64 * 4);  // [text_len, dim] float32 each (tiny T5: dim 64)
  });
});

describe("video-to-video", () => {
  const v2v = readSafetensors(join(root, "test", "golden", "data", "v2v.safetensors"));
  const name = "cfg_strength_0.7";
  const p = JSON.parse(v2v.metadata[name]!);
  // The golden input frames as a lossless file (raw RGB in NUT), which ffmpeg reads back exactly.
  const input = join(dir, "input.nut");
  before(() => {
    const frames = v2v.tensors[`${name}.frames`]!.u8!;
    const r = spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${p.width}x${p.height}`, "-r", "15",
      "-i", "-", "-c:v", "rawvideo", "-pix_fmt", "rgb24", input], { input: frames });
    assert.equal(r.status, 0, String(r.stderr));
  });

  test("the input frames become DiffSynth's preprocessed video, bit for bit", async () => {
    const v = await readInputVideo(input, p.num_frames, p.height, p.width);
    assert.deepEqual(v.shape, [3, p.num_frames, p.height, p.width]);
    assert.deepEqual(v.data, v2v.tensors[`${name}.input_video`]!.f32);
  });

  test("inputVideo + denoisingStrength match DiffSynth's pipeline", async () => {
    const r = await lab.generate({ prompt: p.prompt, negativePrompt: p.negative_prompt, seed: BigInt(p.seed), height: p.height, width: p.width,
      numFrames: p.num_frames, numInferenceSteps: p.num_inference_steps, cfgScale: p.cfg_scale, sigmaShift: p.sigma_shift,
      inputVideo: input, denoisingStrength: p.denoising_strength }, { returnTensors: true });
    const lat = relL2(r.tensors!.latents.data, v2v.tensors[`${name}.latents`]!.f32!);
    assert.ok(lat <= 1e-4, `latents rel L2 ${lat}`);
    assert.deepEqual([r.params.inputVideo, r.params.denoisingStrength], [input, 0.7]);
    assert.ok((r.timings as { video_encode_s?: number }).video_encode_s! > 0);
  });

  test("bad input videos and strengths are refused naming the field, before any work", async () => {
    const base = { prompt: "x", height: p.height, width: p.width, numFrames: 5, numInferenceSteps: 2 };
    await assert.rejects(lab.generate({ ...base, denoisingStrength: 0.5 }),
      (e: unknown) => e instanceof ParamError && e.field === "denoisingStrength" && /< 1 starts from a noised input video; give inputVideo/.test(e.message));
    await assert.rejects(lab.generate({ ...base, inputVideo: join(dir, "nope.mp4") }), /inputVideo .*nope\.mp4 does not exist/);
    await assert.rejects(lab.generate({ ...base, inputVideo: dir }), /is not a regular file/);
    await assert.rejects(lab.generate({ ...base, numFrames: 9, inputVideo: input }), /has 5 frames; numFrames needs 9/);
    const junk = join(dir, "junk.mp4");
    writeFileSync(junk, "not a video");
    await assert.rejects(lab.generate({ ...base, inputVideo: junk }), /ffmpeg could not read it/);
    const r = wanlab(["generate", "--model", model, "--prompt", "x", "--denoising-strength", "0.5"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--denoising-strength 0\.5 < 1 starts from a noised input video; give --input-video/);
  });
});

describe("CLI generate", () => {
  test("writes the mp4, its metadata and the tensors of the contract", () => {
    const out = join(dir, "cli.mp4");
    const tensors = join(dir, "cli.safetensors");
    const r = wanlab(["generate", "--model", model, "--prompt", "A cat walks on the street at night.", "--negative-prompt", "blurry",
      "--seed", "18446744073709551615", "--num-inference-steps", "3", "--cfg-scale", "4", "--sigma-shift", "3",
      "--height", "48", "--width", "64", "--num-frames", "9", "--output", out, "--save-tensors", tensors, "--frames-dir", join(dir, "frames")]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
    assert.match(r.stderr, /seed 18446744073709551615/);
    const meta = JSON.parse(readFileSync(`${out}.json`, "utf8"));
    assert.equal(meta.params.seed, "18446744073709551615");
    assert.equal(meta.params.numFrames, 9);
    const t = readSafetensors(tensors).tensors;
    assert.deepEqual(t.noise!.shape, [16, 3, 6, 8]);
    assert.deepEqual(t.latents!.shape, [16, 3, 6, 8]);
    assert.deepEqual(t.context!.shape, [512, 64]);
    assert.deepEqual(t.video!.shape, [3, 9, 48, 64]);
    assert.equal(t.token_ids!.dtype, "I64");
    assert.deepEqual(t.token_ids!.shape, [512]);
    for (const k of ["noise", "latents", "context", "video"]) assert.equal(t[k]!.dtype, "F32");
    const len = t.token_ids!.i64!.findIndex((v) => v === 0n);
    assert.ok(len > 1 && t.token_ids!.i64![len - 1] === 1n, "the prompt ends with </s>");
    assert.ok(t.context!.f32!.subarray(len * 64).every((v) => v === 0), "context is zero past the prompt");
    assert.ok(t.video!.f32!.every((v) => v >= -1 && v <= 1));
    const probe = spawnSync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=codec_name,pix_fmt,width,height,nb_read_frames", "-of", "json", out], { encoding: "utf8" });
    const s = JSON.parse(probe.stdout).streams[0];
    assert.deepEqual([s.codec_name, s.pix_fmt, s.width, s.height, Number(s.nb_read_frames)], ["h264", "yuv420p", 64, 48, 9]);
    assert.ok(existsSync(join(dir, "frames", "8.png")));
  });

  test("no --seed: a random seed is printed and recorded", () => {
    const out = join(dir, "random.mp4");
    const r = wanlab(["generate", "--model", model, "--prompt", "x", "--num-inference-steps", "1", "--height", "16", "--width", "16", "--num-frames", "1", "--output", out]);
    assert.equal(r.status, 0, r.stderr);
    const seed = /seed (\d+)/.exec(r.stderr)![1]!;
    assert.equal(JSON.parse(readFileSync(`${out}.json`, "utf8")).params.seed, seed);
  });

  test("invalid sizes name the option and the allowed values, before any compute", () => {
    const base = ["generate", "--model", model, "--prompt", "x"];
    let r = wanlab([...base, "--height", "100"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--height must be a multiple of 16, got 100/);
    assert.doesNotMatch(r.stderr, /loading/, "refused before the model loads");
    r = wanlab([...base, "--num-frames", "8"]);
    assert.match(r.stderr, /--num-frames must be 4k\+1/);
    r = wanlab([...base, "--num-inference-steps", "0"]);
    assert.match(r.stderr, /--num-inference-steps must be an integer from 1 to 1000, got 0/);
    r = wanlab([...base, "--cfg-scale", "lots"]);
    assert.match(r.stderr, /--cfg-scale must be a number, got 'lots'/);
    r = wanlab([...base, "--tea-cache-l1-thresh", "0.2", "--num-inference-steps", "2", "--height", "16", "--width", "16", "--num-frames", "1"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--tea-cache-model-id: this DiT \(dim 256, 2 layers\) is neither Wan2\.1-T2V-1\.3B nor 14B/);
    const out = join(dir, "tea.mp4");
    r = wanlab([...base, "--tea-cache-l1-thresh", "0.2", "--tea-cache-model-id", "Wan2.1-T2V-14B", "--num-inference-steps", "4",
      "--height", "16", "--width", "16", "--num-frames", "1", "--seed", "1", "--output", out]);
    assert.equal(r.status, 0, r.stderr);
    const meta = JSON.parse(readFileSync(`${out}.json`, "utf8"));
    assert.deepEqual([meta.params.teaCacheL1Thresh, meta.params.teaCacheModelId, meta.timings.tea_cache_skipped_steps], [0.2, "Wan2.1-T2V-14B", [1, 2]]);
    // without --model the embedded tiny model runs, after the checks that need no model
    r = wanlab(["generate", "--prompt", "x", "--height", "17"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /height/);
    assert.doesNotMatch(r.stderr, /embedded|loading/);
    r = wanlab(["generate", "--model", join(dir, "nope"), "--prompt", "x"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nope does not exist/);
  });
});

describe("compute options (--dtype, --t5-device, --vae-device, --persistent-params)", () => {
  const base = (out: string) => ["generate", "--model", model, "--prompt", "A cat walks on the street at night.", "--seed", "7",
    "--num-inference-steps", "3", "--height", "48", "--width", "64", "--num-frames", "9", "--output", out];

  test("--dtype bf16 on the CPU: latents differ from f32, within 5% relative L2", () => {
    const latents: Record<string, Float32Array> = {};
    for (const dtype of ["f32", "bf16"]) {
      const tensors = join(dir, `dtype-${dtype}.safetensors`);
      const r = wanlab([...base(join(dir, `dtype-${dtype}.mp4`)), "--dtype", dtype, "--save-tensors", tensors]);
      assert.equal(r.status, 0, r.stderr);
      latents[dtype] = readSafetensors(tensors).tensors.latents!.f32!;
    }
    const d = relL2(latents.bf16!, latents.f32!);
    assert.ok(d > 0, "bf16 computes in bf16: the latents differ from f32");
    assert.ok(d < 0.05, `bf16 vs f32 latents: relative L2 ${d}`);
  });

  test("open({ dtype, t5Device, vaeDevice }) is reported by info.placement", async () => {
    const l = await open({ model, dtype: "bf16", t5Device: "cpu", vaeDevice: "cpu" });
    try {
      assert.deepEqual(l.info.placement?.dit, ["cpu bf16"]);
      assert.equal(l.info.placement?.t5, "cpu bf16");
      assert.equal(l.info.placement?.vae, "cpu bf16");
      assert.ok(l.info.placement!.dit_resident_params > 0);
      assert.equal(l.info.placement?.dit_offloaded_params, 0);
    } finally {
      await l.close();
    }
    assert.deepEqual(lab.info.placement?.dit, ["cpu f32"]);
    // No devices given: "auto", which on this CPU-only build is the CPU, and says why.
    assert.equal(lab.info.placement?.devices_note, "auto: cpu (this wanlab build links a CPU-only libtorch)");
    assert.deepEqual(lab.deviceMemory(), []);  // the CUDA devices in use: none
  });

  test("open({ budget }): memoryPlan predicts, a request over it is refused naming 'budget' before any work, the next runs", async () => {
    // Without a budget every plan fits; the plan is what generate reports as predicted.
    const free = lab.memoryPlan({ height: 64, width: 64, numFrames: 9 });
    assert.equal(free.fits, true);
    assert.equal(free.budget_bytes, -1);
    assert.equal(free.device, "cpu");
    assert.equal(free.peak_bytes, Math.max(free.encode_peak_bytes, free.denoise_peak_bytes, free.decode_peak_bytes));
    assert.equal(lab.info.placement?.memory_budget_bytes, -1);
    const l = await open({ model, budget: free.peak_bytes, budgetVideo: { height: 64, width: 64, numFrames: 9 } });
    try {
      assert.match(l.info.placement!.memory_budget_note, /^99\.8 MB per device; 64x64x9 predicted at 99\.8 MB/);
      const big = l.memoryPlan({ height: 480, width: 832, numFrames: 81 });
      assert.equal(big.fits, false);
      assert.match(big.problem, /480x832x81 generation is predicted to need 8\.\d\d GB on cpu .*over the budget of 99\.8 MB; try tiled decode \(2\.\d\d GB\)/);
      await assert.rejects(l.generate({ prompt: "a cat", height: 480, width: 832, numFrames: 81, numInferenceSteps: 1 }),
        (e: unknown) => e instanceof ParamError && e.field === "budget" && e.message === big.problem);
      const r = await l.generate({ prompt: "a cat", seed: 1, height: 64, width: 64, numFrames: 9, numInferenceSteps: 1 });
      assert.equal(r.video.numFrames, 9);
      assert.equal(r.timings.predicted_peak_bytes.decode.cpu, free.decode_peak_bytes);
    } finally {
      await l.close();
    }
  });

  test("--budget: a run over it fails before any compute, naming what it needs; weights over it fail the load; a bad value is a usage error", () => {
    const out = join(dir, "budget.mp4");
    let r = wanlab([...base(out), "--budget", "40M"]);
    assert.equal(r.status, 2, r.stderr);  // the request cannot run as asked, like a size out of range
    assert.match(r.stderr, /48x64x9 generation is predicted to need 78\.1 MB on cpu .*over the --budget of 40\.0 MB; try fewer frames/);
    assert.ok(!existsSync(out));
    r = wanlab([...base(out), "--budget", "1M"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /memory budget 1\.0 MB: the weights this engine keeps on cpu need 13\.0 MB/);
    r = wanlab([...base(out), "--budget", "80M"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(out));
    r = wanlab([...base(join(dir, "budget-auto.mp4")), "--budget", "auto"]);
    assert.equal(r.status, 0, r.stderr);
    const meta = JSON.parse(readFileSync(join(dir, "budget-auto.mp4.json"), "utf8"));
    assert.match(meta.timings.placement.memory_budget_note,
      /^[\d.]+ GB per device \(auto: the host's available [\d.]+ GB less 1\.00 GB\); 48x64x9 predicted at 78\.1 MB/);
    r = wanlab([...base(out), "--budget", "lots"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--budget must be bytes like 24G, 7e9 or 7000000000, or auto, got 'lots'/);
  });

  test("a CUDA device on a machine without one, and a parameter budget on the CPU, fail naming why", () => {
    let r = wanlab([...base(join(dir, "t5.mp4")), "--t5-device", "cuda:0"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /t5 device 'cuda:0': no CUDA device/);
    r = wanlab([...base(join(dir, "vae.mp4")), "--vae-device", "cuda"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /vae device 'cuda': no CUDA device/);
    r = wanlab([...base(join(dir, "pp.mp4")), "--persistent-params", "1G"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /persistent-parameter budget \(1000000000\) needs a CUDA device/);
    r = wanlab([...base(join(dir, "offload.mp4")), "--t5-offload"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /t5 offload keeps the text encoder's weights in host memory between prompts on a CUDA device; the text encoder runs on cpu/);
    assert.ok(!existsSync(join(dir, "t5.mp4")) && !existsSync(join(dir, "pp.mp4")) && !existsSync(join(dir, "offload.mp4")));
  });

  test("bad values are usage errors naming the flag and the allowed values", () => {
    let r = wanlab([...base(join(dir, "bad.mp4")), "--dtype", "f8"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--dtype must be one of f32, bf16, f16, got 'f8'/);
    r = wanlab([...base(join(dir, "bad.mp4")), "--t5-device", "gpu:0"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--t5-device must be cpu, cuda or cuda:N, got 'gpu:0'/);
    r = wanlab([...base(join(dir, "bad.mp4")), "--persistent-params", "lots"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--persistent-params must be a count like 24G/);
    r = wanlab(["generate", "--server", "--prompt", "x", "--dtype", "bf16"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--dtype applies to a local engine/);
    r = wanlab(["serve", "--dtype", "f64"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--dtype must be one of f32, bf16, f16, got 'f64'/);
  });
});

// The benchmark machinery on the tiny model, one forward each: the report's fields, the analytic
// FLOPs for known shapes, and (when a python with torch and DiffSynth are available: WANLAB_PYTHON,
// DIFFSYNTH_DIR) our output against DiffSynth's on the same weights and input. No timing checks.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs, benchModel, defaultEnginePath, type BenchKind, type BenchReport } from "../src/bench.js";

const engine = process.env.WANLAB_ENGINE;  // default: native/build/wanlab-engine

async function tinyBench(kind: BenchKind): Promise<BenchReport> {
  return benchModel(kind, { dims: "tiny", iters: 1, warmup: 0, threads: 1, engine });
}

function checkSide(side: BenchReport["ours"]): void {
  assert.equal(side.times_s.length, 1);
  assert.ok(side.median_s > 0 && side.min_s > 0);
  assert.ok(side.gflops_per_s > 0);
  assert.ok(side.peak_rss_bytes > 0);
  assert.equal(typeof side.peak_rss_delta_bytes, "number");
}

function checkPeer(r: BenchReport): void {
  if (r.peer === null) {
    assert.equal(typeof r.peer_reason, "string");
    assert.ok(r.peer_reason!.length > 0);
    return;
  }
  checkSide(r.peer);
  assert.ok(r.ratio_peer_over_ours! > 0);
  assert.ok(r.rel_l2_ours_vs_peer! <= 1e-4, `rel L2 ours vs DiffSynth ${r.rel_l2_ours_vs_peer}`);
}

describe("bench", () => {
  test("command line", () => {
    assert.deepEqual(benchArgs("t5", { dims: "1.3B", layers: 2, tokens: 128, peer: false }),
      ["bench", "t5", "--dims", "1.3B", "--layers", "2", "--tokens", "128", "--no-peer"]);
    assert.throws(() => benchArgs("dit", { iters: 1.5 }), /iters must be a non-negative integer/);
    assert.deepEqual(benchArgs("dit", { dims: "14B", device: "cuda:0", dtype: "bf16" }),
      ["bench", "dit", "--dims", "14B", "--device", "cuda:0", "--dtype", "bf16"]);
  });

  test("dit: fields, FLOPs, peer", async () => {
    const r = await tinyBench("dit");
    assert.equal(r.bench, "dit");
    assert.equal(r.threads, 1);
    // 5 frames of 64x64 -> latents [16, 2, 8, 8] -> L = 2 * 4 * 4 = 32 tokens; Lc = 512.
    assert.deepEqual(r.input.latents, [16, 2, 8, 8]);
    assert.equal(r.input.tokens, 32);
    // tiny: D 256, F 512, 2 blocks, text_dim 64, freq_dim 256, patch volume 4, in = out = 16
    const L = 32, Lc = 512, D = 256, F = 512;
    const block = 8 * L * D * D + 4 * L * L * D + 4 * L * D * D + 4 * Lc * D * D + 4 * L * Lc * D + 4 * L * D * F;
    const once = 2 * L * D * 16 * 4 + 2 * Lc * (64 * D + D * D) + 2 * (256 * D + 7 * D * D) + 2 * L * D * 16 * 4;
    assert.equal(r.flops, 2 * block + once);
    // PyTorch's FlopCounterMode on DiffSynth's forward counts 439353344: all but the attention
    // products (CPU SDPA is not counted), 2 * (4 L^2 D + 4 L Lc D) = 35651584.
    assert.equal(r.flops, 439353344 + 35651584);
    checkSide(r.ours);
    checkPeer(r);
  });

  test("t5: fields, FLOPs, peer", async () => {
    const r = await tinyBench("t5");
    // tiny: D = Da = 64, F = 128, 2 layers, 512 tokens: 2 * (8 L D Da + 4 L^2 Da + 6 L D F)
    assert.equal(r.input.tokens, 512);
    assert.equal(r.flops, 2 * (8 * 512 * 64 * 64 + 4 * 512 * 512 * 64 + 6 * 512 * 64 * 128));
    checkSide(r.ours);
    checkPeer(r);
  });

  test("vae: fields, peer", async () => {
    const r = await tinyBench("vae");
    assert.deepEqual(r.input.latents, [16, 2, 8, 8]);
    // FlopCounterMode on DiffSynth's decode counts the convs, 1294204928; plus the middle attention,
    // 4 (hw)^2 C per frame and chunk: 2 * 4 * 64^2 * 32 = 1048576.
    assert.equal(r.flops, 1294204928 + 1048576);
    checkSide(r.ours);
    checkPeer(r);
  });

  test("bad options are errors", async () => {
    await assert.rejects(benchModel("dit", { dims: "tiny", height: 60, engine }), /multiples of 16/);
  });
});

// The device benches (bench matmul|attention|elementwise|t2v) run on CPU here at small sizes: the
// fields, the FLOP arithmetic and the memory model's prediction beside the measurement. The GPU
// figures are in bench/results/ (README "On NVIDIA GPUs").
describe("device benches on the CPU", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const run = (args: string[]): Record<string, any> => {
    const r = spawnSync(engine ?? defaultEnginePath, args, { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  test("matmul: 2 n^3 / time", () => {
    const r = run(["bench", "matmul", "--device", "cpu", "--size", "128", "--iters", "2"]);
    assert.equal(r.n, 128);
    assert.ok(Math.abs(r.tflops_per_s - (2 * 128 ** 3) / r.median_s / 1e12) < 1e-9);
  });

  test("attention: every backend answers (or says why), close to float32 math", () => {
    const r = run(["bench", "attention", "--device", "cpu", "--tokens", "64", "--heads", "2", "--head-dim", "32", "--iters", "1"]);
    assert.deepEqual(r.shape, [1, 2, 64, 32]);
    assert.equal(r.backends.length, 4);
    for (const b of r.backends) assert.ok(b.error !== undefined || b.rel_l2_vs_f32_math < 2e-2, JSON.stringify(b));
  });

  test("elementwise: per-block sums and the fused bound", () => {
    const r = run(["bench", "elementwise", "--device", "cpu", "--dims", "tiny", "--tokens", "256", "--iters", "1"]);
    const counted = r.ops.filter((o: any) => o.per_block > 0);
    const sum = counted.reduce((s: number, o: any) => s + o.per_block * o.median_s, 0);
    assert.ok(Math.abs(sum - r.per_block_s) < 1e-12);
    assert.ok(r.copy_gb_per_s > 0 && r.per_block_if_fused_s > 0);
    assert.ok(Math.abs(r.per_forward_s - r.per_block_s * r.layers) < 1e-12);
    // The ring's merge is timed per ring pass, outside the one-GPU block's sum.
    const merge = r.ops.find((o: any) => /^ring merge_attention_part/.test(o.op));
    assert.ok(merge && merge.per_block === 0 && merge.median_s > 0 && merge.achieved_gb_per_s > 0, JSON.stringify(merge));
    // The own kernels name the ATen op each replaces; on a CPU build they say why they did not run.
    assert.equal(r.own_kernels.length, 2);
    for (const k of r.own_kernels) {
      assert.ok(r.ops.some((o: any) => o.op === k.replaces), k.replaces);
      assert.match(k.unavailable, /no CUDA|not CUDA|not on a CUDA device/);
    }
  });

  test("t2v: random weights in memory, stage timings, FLOPs, predicted memory", () => {
    const r = run(["bench", "t2v", "--random-weights", "tiny", "--device", "cpu", "--steps", "2", "--frames", "5",
      "--height", "64", "--width", "64", "--peak-tflops", "1"]);
    assert.equal(r.steps_run, 2);
    assert.equal(r.step_s.length, 2);
    assert.equal(r.video.tokens, 32);
    assert.equal(r.flops.step, 2 * r.flops.dit_forward);  // CFG: two forwards per step
    assert.ok(Math.abs(r.full_estimate_s - (r.encode_s + 50 * r.step_median_s + r.decode_s)) < 1e-9);
    assert.ok(Math.abs(r.full_over_flop_bound - r.full_estimate_s / (r.flops.full / 1e12)) < 1e-9);
    assert.deepEqual(r.placement.dit, ["cpu f32"]);
    assert.ok(r.predicted.peak_bytes >= r.predicted.resident_bytes);
    assert.deepEqual([r.v2v_strength, r.video_encode_s, r.predicted.vae_encode_activation_bytes], [0, 0, 0]);
    // video-to-video from the synthetic input: the encode is timed and planned
    const v = run(["bench", "t2v", "--random-weights", "tiny", "--device", "cpu", "--steps", "2", "--frames", "5",
      "--height", "64", "--width", "64", "--v2v-strength", "0.6"]);
    assert.equal(v.v2v_strength, 0.6);
    assert.ok(v.video_encode_s > 0 && v.video_encode_s <= v.encode_s);
    assert.equal(v.predicted.vae_encode_activation_bytes, v.predicted.vae_activation_bytes);
    const bad = spawnSync(engine ?? defaultEnginePath, ["bench", "t2v", "--random-weights", "tiny", "--device", "cpu", "--steps", "1"], { encoding: "utf8" });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--steps must be at least 2/);
  });

  test("wanlab-engine: a command line it cannot take exits 2 naming the option; a refused value exits 1", () => {
    const exe = engine ?? defaultEnginePath;
    for (const [args, message] of [
      [["bench", "elementwise", "--device", "cpu", "--bogus", "1"], /unknown option --bogus/],
      [["bench", "matmul", "--size", "x"], /option --size must be an integer, got 'x'/],
      [["bench", "overlap", "--ranks"], /option --ranks needs a value/],
      [["bench", "frobnicate"], /unknown bench target 'frobnicate'/],
      [["inspect"], /inspect needs exactly one model directory/],
    ] as const) {
      const r = spawnSync(exe, args, { encoding: "utf8" });
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /--help for usage/);
    }
    const refused = spawnSync(exe, ["inspect", join(tmpdir(), "wanlab-no-such-model")], { encoding: "utf8" });
    assert.equal(refused.status, 1, refused.stderr);
  });
});

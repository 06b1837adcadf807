// The benchmark machinery on the tiny model, one forward each: the report's fields, the analytic
// FLOPs for known shapes, and (when a python with torch and DiffSynth are available: WANLAB_PYTHON,
// DIFFSYNTH_DIR) our output against DiffSynth's on the same weights and input. No timing checks.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { benchArgs, benchModel, type BenchKind, type BenchReport } from "../kernel/bench.js";

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

// The analytic model of a parallel step (src/parallel-model.ts): its terms, collectives and wire
// bytes worked by hand for the 14B model at 720p, Ulysses head groups, sharded weights, and the
// GPU estimate made of them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { blockParams, dimsOf, gpuEstimate, shardParts, stepComm, ulyssesHeadGroups } from "./parallel-model.js";

test("the analytic model: terms, collectives and wire bytes by hand for 14B 720p", () => {
  const s = { height: 720, width: 1280, numFrames: 81, cfgScale: 5 };
  const u8 = stepComm(dimsOf["14B"], { ulysses: 8, ring: 1, cfgParallel: false }, s, 2);
  assert.equal(u8.tokens, 21 * 45 * 80);
  assert.equal(u8.tokensPerRank, 9450);
  // per pass: 40 blocks × 4·5120·9450·2 B (Ulysses) + 9450·64·2 B (output gather); 2 passes; flag 4 B
  assert.equal(u8.bytesSent, 4 + 2 * (40 * 4 * 5120 * 9450 * 2 + 9450 * 64 * 2));
  assert.equal(u8.collectives, 1 + 2 * (40 * 2 + 1));  // 5 heads per rank: one head group
  // 1.3B, Ulysses 2: 6 heads per rank in 2 groups, so 4 all-to-alls per block; 14B Ulysses 4: 10 heads, 2 groups.
  assert.equal(ulyssesHeadGroups(12, 2), 2);
  assert.equal(ulyssesHeadGroups(40, 8), 1);
  assert.equal(ulyssesHeadGroups(8, 4), 2);
  assert.equal(ulyssesHeadGroups(2, 2), 1);
  assert.equal(ulyssesHeadGroups(12, 1), 1);  // no Ulysses, no groups
  const u2 = stepComm(dimsOf["1.3B"], { ulysses: 2, ring: 1, cfgParallel: false }, s, 2);
  assert.equal(u2.collectives, 1 + 2 * (30 * 4 + 1));
  assert.equal(u8.wireBytes, 2 * 40 * 4 * 5120 * 9450 * 2 * 7 / 8 + 2 * 9450 * 64 * 2 * 7);
  const r2 = stepComm(dimsOf["14B"], { ulysses: 1, ring: 2, cfgParallel: false }, s, 2);
  assert.equal(r2.terms.ring, 2 * 40 * 2 * 1 * 5120 * 37800 * 2);
  // Sharded weights, bf16: the 14B block (351,394,304 params, as native/src/models/memory_model.cpp counts
  // it) in two flat buffers, bf16 and the float32 norm3 + modulation (8·D), each split 8 ways.
  assert.equal(blockParams(dimsOf["14B"]).total, 351_394_304);
  assert.deepEqual(shardParts(dimsOf["14B"], 8, 2), [{ elements: 43_919_168, bytesPerElement: 2 }, { elements: 5120, bytesPerElement: 4 }]);
  const u8s = stepComm(dimsOf["14B"], { ulysses: 8, ring: 1, cfgParallel: false, shardWeights: true }, s, 2);
  assert.equal(u8s.terms.weight_shards, 2 * 40 * (43_919_168 * 2 + 5120 * 4));
  assert.equal(u8s.bytesSent - u8.bytesSent, u8s.terms.weight_shards);
  assert.equal(u8s.collectives - u8.collectives, 2 * 40 * 2);
  assert.equal(u8s.wireBytes - u8.wireBytes, u8s.terms.weight_shards * 7);
  const est = gpuEstimate(dimsOf["14B"], s, [8]);
  assert.deepEqual(est.map((e) => e.layout), ["ulysses", "ring"]);
  assert.ok(Math.abs(est[0]!.commSecondsPerStep - (u8.wireBytes / 450e9 + u8.collectives * 20e-6)) < 1e-12);
  assert.ok(Math.abs(est[0]!.shardWireGBPerStep * 1e9 - u8s.terms.weight_shards * 7) < 1e-3);
  assert.ok(Math.abs(est[0]!.shardCommSecondsPerStep - (u8s.terms.weight_shards * 7 / 450e9 + 2 * 40 * 2 * 20e-6)) < 1e-12);
});

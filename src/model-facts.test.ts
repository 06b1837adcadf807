// memoryPlan is the engine's memory model (native/src/models/memory_model.h) reached through the
// addon: the same bytes for a preset and for its {dit, t5, vae}, per rank with sequence
// parallelism, and a bad option refused naming it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryPlan, modelConstants } from "./model-facts.js";

test("memoryPlan of a preset name and of its {dit, t5, vae} are the same plan", () => {
  const options = { height: 480, width: 832, numFrames: 81, gpu: true };
  assert.deepEqual(memoryPlan(modelConstants().presets["1.3B"], options), memoryPlan("1.3B", options));
});

test("memoryPlan gives the 14B 720p DiT activations the engine predicts on one GPU (9.29 GB)", () => {
  const p = memoryPlan("14B", { height: 720, width: 1280, numFrames: 81, gpu: true });
  assert.equal(p.dit_activation_bytes, 9_289_728_000);
  assert.equal(p.denoise_peak_bytes, p.resident_bytes + p.dit_streamed_bytes + p.dit_activation_bytes);
  assert.equal(p.peak_bytes, Math.max(p.encode_peak_bytes, p.denoise_peak_bytes, p.decode_peak_bytes));
});

test("memoryPlan splits the DiT's activations over the sequence-parallel ranks and gathers two blocks when sharded", () => {
  const video = { height: 720, width: 1280, numFrames: 81, bytesPerValue: 4 as const };
  const one = memoryPlan("tiny", video), four = memoryPlan("tiny", { ...video, sequenceParallel: 4 });
  const sharded = memoryPlan("tiny", { ...video, sequenceParallel: 4, shardWeights: true });
  assert.equal(four.dit_activation_bytes, one.dit_activation_bytes / 4);  // 75 600 tokens divide by 4
  assert.equal(four.dit_streamed_bytes, 0);
  assert.ok(sharded.dit_streamed_bytes > 0 && sharded.dit_resident_bytes < four.dit_resident_bytes);
});

test("memoryPlan refuses an unknown option, a bad frame count and a missing arch key, naming each", () => {
  const field = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as { field?: string }).field;
    }
    return "accepted";
  };
  assert.equal(field(() => memoryPlan("tiny", { frames: 5 } as never)), "frames");
  assert.equal(field(() => memoryPlan("tiny", { numFrames: 6 })), "numFrames");
  const { dit, t5, vae } = modelConstants().presets.tiny;
  const { dim: _, ...noDim } = dit;
  assert.equal(field(() => memoryPlan({ dit: noDim, t5, vae })), "arch.dit.dim");
  assert.equal(field(() => memoryPlan("7B" as never)), "arch");
});

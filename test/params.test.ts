// kernel/params.ts: the engine's own errors about a request field become ParamErrors on the field
// the API names, so a server answers 400 { field } and the CLI names the flag, whichever side
// caught the value.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ParamError, paramErrorFromEngine, paramRanges, rangeText, resolveParams } from "../kernel/params.js";

test("paramErrorFromEngine: a message that starts with a request field names it, every field renamed camelCase", () => {
  const tea = paramErrorFromEngine(new Error("tea_cache_model_id 'x' is given without tea_cache_l1_thresh, which turns TeaCache on"));
  assert.ok(tea instanceof ParamError);
  assert.equal(tea.field, "teaCacheModelId");
  assert.equal(tea.message, "teaCacheModelId 'x' is given without teaCacheL1Thresh, which turns TeaCache on");
  const steps = paramErrorFromEngine(new Error("num_inference_steps must be between 1 and 1000, got 0"));
  assert.deepEqual([steps?.field, steps?.message], ["numInferenceSteps", "numInferenceSteps must be between 1 and 1000, got 0"]);
  const strength = paramErrorFromEngine(new Error("denoising_strength 0.5 < 1 starts from a noised input video; give input_video"));
  assert.deepEqual([strength?.field, strength?.message], ["denoisingStrength", "denoisingStrength 0.5 < 1 starts from a noised input video; give inputVideo"]);
  assert.equal(paramErrorFromEngine(new Error("height must be a multiple of 16, got 20"))?.field, "height");
  assert.equal(paramErrorFromEngine(new Error("tea_cache_model_id: this DiT (dim 256, 2 layers) is neither Wan2.1-T2V-1.3B nor 14B"))?.field, "teaCacheModelId");
});

test("paramErrorFromEngine: any other error stays as it is", () => {
  for (const m of ["rank 1 (cpu:1): injected fault at denoise", "CUDA out of memory. Tried to allocate 2.00 GiB",
    "memory budget must be positive bytes, got 0", "devices 'cpu,cuda:0' mix CPU and CUDA ranks; use one kind", ""])
    assert.equal(paramErrorFromEngine(new Error(m)), undefined, m);
  assert.equal(paramErrorFromEngine("not an error"), undefined);
});

test("paramRanges is the range resolveParams holds (the CLI's messages quote it)", () => {
  const base = { prompt: "x", seed: 1 };
  const valid: Record<string, (n: number) => number> = { height: (n) => n, width: (n) => n, numFrames: (n) => n };
  for (const [field, [min, max]] of Object.entries(paramRanges)) {
    const exclusiveMin = rangeText(field as keyof typeof paramRanges).startsWith("(");
    const extra = field === "denoisingStrength" ? { inputVideo: "in.mp4" } : {};
    const ok = (v: number) => resolveParams({ ...base, ...extra, [field]: valid[field]?.(v) ?? v });
    if (!exclusiveMin) ok(min);
    ok(max);
    assert.throws(() => ok(max + 1), (e: unknown) => e instanceof ParamError && e.field === field, `${field} ${max + 1}`);
    assert.throws(() => ok(min - 1), (e: unknown) => e instanceof ParamError && e.field === field, `${field} ${min - 1}`);
  }
  assert.equal(rangeText("sigmaShift"), "(0, 100]");
  assert.equal(rangeText("cfgScale"), "[0, 100]");
});

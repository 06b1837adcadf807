// src/params.ts: the engine's own errors about a request field (a wan::ParamError, which the
// addon hands over as code "WANLAB_PARAM" and `field`, the engine's snake_case name) become
// ParamErrors on the field the API names, so a server answers 400 { field } and the CLI names the
// flag, whichever side caught the value. No message is parsed for the field.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { native } from "./native.js";
import { ParamError, paramErrorFromEngine, paramRanges, rangeText, resolveParams } from "./params.js";
import { scratch, wanlab } from "../test/helpers.js";

/** An error as the addon throws it for a wan::ParamError on `field`. */
const engineError = (field: string, message: string) => Object.assign(new Error(message), { code: "WANLAB_PARAM", field });

test("paramErrorFromEngine: the engine's field names the API's, every field in the message renamed camelCase", () => {
  const tea = paramErrorFromEngine(engineError("tea_cache_model_id", "tea_cache_model_id 'x' is given without tea_cache_l1_thresh, which turns TeaCache on"));
  assert.ok(tea instanceof ParamError);
  assert.equal(tea.field, "teaCacheModelId");
  assert.equal(tea.message, "teaCacheModelId 'x' is given without teaCacheL1Thresh, which turns TeaCache on");
  const steps = paramErrorFromEngine(engineError("num_inference_steps", "num_inference_steps must be between 1 and 1000, got 0"));
  assert.deepEqual([steps?.field, steps?.message], ["numInferenceSteps", "numInferenceSteps must be between 1 and 1000, got 0"]);
  const strength = paramErrorFromEngine(engineError("denoising_strength", "denoising_strength 0.5 < 1 starts from a noised input video; give input_video"));
  assert.deepEqual([strength?.field, strength?.message], ["denoisingStrength", "denoisingStrength 0.5 < 1 starts from a noised input video; give inputVideo"]);
  assert.equal(paramErrorFromEngine(engineError("height", "height must be a multiple of 16, got 20"))?.field, "height");
  assert.equal(paramErrorFromEngine(engineError("tea_cache_model_id", "tea_cache_model_id: this DiT (dim 256, 2 layers) is neither Wan2.1-T2V-1.3B nor 14B"))?.field, "teaCacheModelId");
  // The field, not the message: a message that starts with another name still names the field given.
  assert.equal(paramErrorFromEngine(engineError("negative_prompt", "negative prompt token ids must be int64"))?.field, "negativePrompt");
});

test("paramErrorFromEngine: any other error stays as it is", () => {
  for (const m of ["rank 1 (cpu:1): injected fault at denoise", "CUDA out of memory. Tried to allocate 2.00 GiB",
    "memory budget must be positive bytes, got 0", "devices 'cpu,cuda:0' mix CPU and CUDA ranks; use one kind", ""])
    assert.equal(paramErrorFromEngine(new Error(m)), undefined, m);
  // A message that starts with a field name is no ParamError without the engine's field.
  assert.equal(paramErrorFromEngine(new Error("num_inference_steps must be between 1 and 1000, got 0")), undefined);
  // A field the API does not have (the node stream's input_latents) stays the engine's error.
  assert.equal(paramErrorFromEngine(engineError("input_latents", "input_latents must be [16, 1, 2, 2], got [1]")), undefined);
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

describe("the engine's request validation through the addon", () => {
  interface NativeEngine { generate(r: Record<string, unknown>): Promise<unknown>; plan(r: Record<string, unknown>): string; close(): void }
  const dir = scratch("wanlab-params-");
  const model = join(dir, "tiny");
  let engine: NativeEngine;
  before(async () => {
    assert.equal(wanlab(["make-tiny", model]).status, 0);
    engine = (await native().openEngine(model, { devices: "cpu" })) as NativeEngine;
  });
  after(() => engine?.close());

  /** What generate(request) throws (validation runs before any work is queued). */
  async function refusal(request: Record<string, unknown>): Promise<{ code?: string; field?: string; message: string }> {
    const ids = new BigInt64Array(512);
    try {
      await engine.generate({ promptIds: ids, promptMask: ids, seed: 1, height: 16, width: 16, numFrames: 1, numInferenceSteps: 1, cfgScale: 1, ...request });
    } catch (e) {
      return e as { code?: string; field?: string; message: string };
    }
    throw new Error(`the engine took ${JSON.stringify(request)}`);
  }

  test("a value only the engine checks (the prompt's token ids, the TeaCache calibration for this DiT) is a ParamError on its API field", async () => {
    const prompt = await refusal({ promptIds: new BigInt64Array(3), promptMask: new BigInt64Array(3) });
    assert.deepEqual([prompt.code, prompt.field], ["WANLAB_PARAM", "prompt"]);
    assert.match(prompt.message, /^prompt token ids must have shape \[\d+\] \(text_len\), got \[3\]$/);
    const p = paramErrorFromEngine(prompt);
    assert.ok(p instanceof ParamError);
    assert.equal(p.field, "prompt");
    // The plan (asked before every job) names the calibration: the tiny DiT is neither 1.3B nor 14B.
    const tea = (() => { try { engine.plan({ height: 16, width: 16, numFrames: 1, teaCacheL1Thresh: 0.1 }); } catch (e) { return e; } })();
    assert.equal(paramErrorFromEngine(tea)?.field, "teaCacheModelId");
    assert.equal((await refusal({ teaCacheL1Thresh: 0.1 })).field, "tea_cache_model_id");
  });

  test("each field the engine checks again is named: the size that is out, steps, guidance, shift, tiles, TeaCache, strength", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ height: 20 }, "height"], [{ width: 8 }, "width"], [{ numFrames: 2 }, "numFrames"], [{ height: 32, width: 24, numFrames: 3 }, "width"],
      [{ numInferenceSteps: 0 }, "numInferenceSteps"], [{ cfgScale: 101 }, "cfgScale"], [{ sigmaShift: 0 }, "sigmaShift"],
      [{ tileSize: [4, 4], tileStride: [5, 4] }, "tileStride"], [{ tileSize: [0, 4] }, "tileSize"], [{ teaCacheL1Thresh: 11 }, "teaCacheL1Thresh"],
      [{ teaCacheModelId: "Wan2.1-T2V-14B" }, "teaCacheModelId"], [{ denoisingStrength: 0.5 }, "denoisingStrength"],
    ];
    for (const [request, field] of cases) {
      const e = await refusal(request);
      assert.equal(e.code, "WANLAB_PARAM", `${JSON.stringify(request)}: ${e.message}`);
      assert.equal(paramErrorFromEngine(e)?.field, field, `${JSON.stringify(request)}: ${e.message}`);
    }
  });
});

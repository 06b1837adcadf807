// The latent preview a notebook shows while denoising: latents projected to RGB (ComfyUI's Wan21
// latent_rgb_factors) and a strip of up to four latent frames as a PNG.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { latentFrameToRgb, latentPreview } from "./preview.js";

describe("latent → RGB projection (ComfyUI's Wan21 latent_rgb_factors)", () => {
  test("zero latents give the bias; a one-hot channel adds its row", () => {
    const f = 1, h = 1, w = 2;
    const data = new Float32Array(16 * f * h * w);
    data[2 * h * w + 1] = 1; // channel 2, pixel 1
    const px = latentFrameToRgb({ data, shape: [16, f, h, w] }, 0);
    // (bias + 1) / 2 · 255: (-0.1835, -0.0868, -0.3360) → 104, 116, 85
    assert.deepEqual([...px.subarray(0, 3)], [104, 116, 85]);
    // channel 2's row (0.3568, 0.2548, 0.1747) + bias → 150, 149, 107
    assert.deepEqual([...px.subarray(3, 6)], [150, 149, 107]);
  });

  test("the preview strip holds up to 4 latent frames, first to last, scaled up", () => {
    const p = latentPreview({ data: new Float32Array(16 * 9 * 4 * 6), shape: [16, 9, 4, 6] });
    assert.deepEqual(p.frames, [0, 3, 5, 8]);
    assert.equal(p.height, 96);
    assert.equal(p.width, 4 * 6 * 24);
    assert.deepEqual([...p.png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
  });
});

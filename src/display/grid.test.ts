// grid() and compare(): tiles laid out and captioned by the parameters that differ.
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { describe, test } from "node:test";
import { compare, grid, varyingLabels } from "./grid.js";
import { valueBundle } from "./value.js";
import { frameStrip } from "./video.js";

const video = (w: number, h: number, value: number, numFrames = 1) => ({ width: w, height: h, numFrames, fps: 15, frames: new Uint8Array(w * h * 3 * numFrames).fill(value) });
const result = (seed: bigint, cfgScale: number) => ({ video: video(8, 8, Number(seed) * 10), params: { prompt: "p", seed, cfgScale, sigmaShift: 5 } });
const pngSize = (b: Buffer) => [b.readUInt32BE(16), b.readUInt32BE(20)];

describe("grid and compare", () => {
  test("captions name only the parameters that differ; seeds as plain integers", () => {
    assert.deepEqual(varyingLabels([result(1n, 1), result(1n, 5), result(2n, 1)]), ["seed 1, cfg 1", "seed 1, cfg 5", "seed 2, cfg 1"]);
    assert.deepEqual(varyingLabels([video(8, 8, 0), video(8, 8, 1)]), ["#1", "#2"]);
  });

  test("rows × cols from either; the sheet is tiles scaled by a whole factor with 4-pixel gaps", () => {
    const g = grid([result(1n, 1), result(1n, 5), result(2n, 1)], { cols: 2 });
    assert.deepEqual([g.rows, g.cols], [2, 2]);
    assert.deepEqual(pngSize(g.png), [2 * 128 + 4, 2 * 128 + 4]);
    const b = g.mimeBundle();
    assert.ok(b["image/png"] && String(b["text/html"]).includes("seed 2, cfg 1"));
    assert.equal(b["text/plain"], "grid of 3 videos, 2 × 2\n  seed 1, cfg 1 | seed 1, cfg 5\n  seed 2, cfg 1");
    assert.deepEqual([grid([video(8, 8, 0), video(8, 8, 0), video(8, 8, 0)], { rows: 3 }).cols], [1]);
  });

  test("refuses what it cannot lay out, naming the option", () => {
    assert.throws(() => grid([]), /one or more videos/);
    assert.throws(() => grid([video(8, 8, 0), video(8, 8, 0), video(8, 8, 0)], { rows: 1, cols: 2 }), /rows × cols = 1 × 2 holds 2 videos, got 3/);
    assert.throws(() => grid([video(8, 8, 0)], { labels: ["a", "b"] }), /labels has 2 entries for 1 videos/);
    assert.throws(() => grid([{ frames: [] } as never]), /item 0 is not a video/);
  });

  test("compare: two tiles side by side with their captions", () => {
    const c = compare(result(1n, 1), result(1n, 5));
    assert.equal(c.mimeBundle()["text/plain"], "compare: cfg 1 | cfg 5");
    assert.equal(inspect(c), "compare: cfg 1 | cfg 5");
  });

  test("an array of results shows as a grid; other values as text with plain bigints", () => {
    assert.match(String(valueBundle([result(1n, 1), result(2n, 1)])["text/plain"]), /^grid of 2 videos/);
    assert.deepEqual(valueBundle({ seed: 42n, big: 2n ** 60n }), { "text/plain": "{ seed: 42, big: 1152921504606846976n }" });
  });

  test("frameStrip is still the PNG's bytes, and shows as the image", () => {
    const s = frameStrip({ video: video(4, 2, 7, 3) });
    assert.ok(Buffer.isBuffer(s));
    assert.deepEqual(pngSize(s), [12, 2]);
    assert.equal(s.mimeBundle()["image/png"], s.toString("base64"));
    assert.equal(inspect(s), "frame strip: 3 frames of 4×2");
  });
});

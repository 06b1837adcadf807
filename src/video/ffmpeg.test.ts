// Video output: where ffmpeg comes from, a real H.264 encode checked with ffprobe, PNG frames, and
// DiffSynth's float → uint8 rounding. ffmpeg and ffprobe are required (CI installs them): without
// them these tests fail rather than skip.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { describe, test } from "node:test";
import { scratch } from "../../test/helpers.js";
import { crfFromQuality, findFfmpeg, writeMp4, writePngFrames } from "./ffmpeg.js";
import { videoToUint8 } from "./convert.js";

const dir = scratch();
const emptyBin = join(dir, "empty-bin");
mkdirSync(emptyBin);

function fakeFfmpeg(name: string, versionLine: string, code = 0): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho '${versionLine}'\nexit ${code}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("finding ffmpeg", () => {
  test("FFMPEG_PATH comes first", async () => {
    const fake = fakeFfmpeg("fake-ffmpeg", "ffmpeg version 99.fake");
    const found = await findFfmpeg({ ...process.env, FFMPEG_PATH: fake });
    assert.deepEqual(found, { path: fake, source: "FFMPEG_PATH", version: "ffmpeg version 99.fake" });
  });

  test("a broken FFMPEG_PATH falls through to PATH", async () => {
    const broken = fakeFfmpeg("broken-ffmpeg", "not ffmpeg", 1);
    const found = await findFfmpeg({ ...process.env, FFMPEG_PATH: broken });
    assert.equal(found.source, "PATH");
  });

  test("ffmpeg on PATH when FFMPEG_PATH is unset (ffmpeg-static is not installed here)", async () => {
    const env = { ...process.env };
    delete env.FFMPEG_PATH;
    const found = await findFfmpeg(env);
    assert.equal(found.source, "PATH");
    assert.match(found.version, /^ffmpeg version/);
  });

  test("none found names all three places", async () => {
    const env = { ...process.env, PATH: emptyBin, FFMPEG_PATH: join(dir, "missing-ffmpeg") };
    await assert.rejects(findFfmpeg(env), (e: Error) =>
      /ffmpeg not found/.test(e.message) && e.message.includes("FFMPEG_PATH (") && e.message.includes("ffmpeg-static") &&
      e.message.includes("ffmpeg on PATH: not found"));
    await assert.rejects(writeMp4(new Uint8Array(2 * 2 * 3), { width: 2, height: 2, frames: 1, out: join(dir, "x.mp4"), env }), /ffmpeg not found/);
    assert.equal(existsSync(join(dir, "x.mp4")), false);
  });
});

function synthetic(frames: number, height: number, width: number): Uint8Array {
  const rgb = new Uint8Array(frames * height * width * 3);
  for (let f = 0; f < frames; f++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const i = ((f * height + y) * width + x) * 3;
        rgb[i] = (x * 4 + f * 16) & 255;
        rgb[i + 1] = (y * 4) & 255;
        rgb[i + 2] = f % 2 ? 200 : 40;
      }
  return rgb;
}

describe("writeMp4", () => {
  test("H.264 yuv420p with the right size and frame count (ffprobe)", async () => {
    const out = join(dir, "video", "clip.mp4");
    const [F, H, W] = [9, 48, 80];
    const used = await writeMp4(synthetic(F, H, W), { width: W, height: H, frames: F, fps: 15, out });
    assert.equal(used.source === "PATH" || used.source === "FFMPEG_PATH" || used.source === "ffmpeg-static", true);
    const probe = spawnSync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
      "stream=codec_name,pix_fmt,width,height,nb_read_frames,r_frame_rate", "-of", "json", out], { encoding: "utf8" });
    assert.equal(probe.error, undefined, `ffprobe is required: ${probe.error?.message}`);
    assert.equal(probe.status, 0, probe.stderr);
    const s = (JSON.parse(probe.stdout) as { streams: Record<string, unknown>[] }).streams[0]!;
    assert.deepEqual(s, { codec_name: "h264", pix_fmt: "yuv420p", width: W, height: H, r_frame_rate: "15/1", nb_read_frames: String(F) });
    // +faststart: the index (moov) precedes the media data (mdat)
    const bytes = readFileSync(out);
    assert.ok(bytes.indexOf("moov") < bytes.indexOf("mdat"));
    // nothing left beside it
    assert.deepEqual(readdirSync(join(dir, "video")), ["clip.mp4"]);
  });

  test("bad input names the parameter", async () => {
    const out = join(dir, "bad.mp4");
    await assert.rejects(writeMp4(new Uint8Array(10), { width: 2, height: 2, frames: 1, out }), /frames has 10 bytes; \[1, 2, 2, 3\] RGB needs 12/);
    await assert.rejects(writeMp4(new Uint8Array(27), { width: 3, height: 3, frames: 1, out }), /must be even/);
    await assert.rejects(writeMp4(new Uint8Array(12), { width: 2, height: 2, frames: 1, out, crf: 60 }), /crf must be an integer from 0 to 51, got 60/);
    assert.equal(existsSync(out), false);
  });

  test("imageio's quality → crf mapping", () => {
    assert.equal(crfFromQuality(9), 5); // save_video's default
    assert.equal(crfFromQuality(5), 25); // DiffSynth's Wan examples
    assert.equal(crfFromQuality(10), 0);
    assert.equal(crfFromQuality(0), 51);
    assert.throws(() => crfFromQuality(11), /quality must be between 0 and 10, got 11/);
  });
});

describe("writePngFrames", () => {
  test("one PNG per frame holding the exact pixels", async () => {
    const [F, H, W] = [3, 5, 7];
    const rgb = synthetic(F, H, W);
    const paths = await writePngFrames(rgb, { width: W, height: H, frames: F, dir: join(dir, "png") });
    assert.deepEqual(paths.map((p) => p.split("/").at(-1)), ["0.png", "1.png", "2.png"]);
    const png = readFileSync(paths[1]!);
    assert.equal(png.readUInt32BE(16), W);
    assert.equal(png.readUInt32BE(20), H);
    const idatLen = png.readUInt32BE(33);
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    for (let y = 0; y < H; y++) {
      assert.deepEqual(raw.subarray(y * (W * 3 + 1) + 1, (y + 1) * (W * 3 + 1)), Buffer.from(rgb.subarray((H + y) * W * 3, (H + y + 1) * W * 3)));
    }
    // ffmpeg reads it back as the same size
    const probe = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height,pix_fmt", "-of", "csv=p=0", paths[0]!], { encoding: "utf8" });
    assert.equal(probe.stdout.trim(), `${W},${H},rgb24`);
  });
});

describe("videoToUint8", () => {
  test("rounds like DiffSynth: float32 (x + 1) * 127.5, clipped, truncated", () => {
    // expected: ((x - (-1)) * (255 / 2)).clip(0, 255).astype(uint8) on float32 (numpy 2.4, the
    // same IEEE float32 elementwise arithmetic as DiffSynth's torch tensors)
    const xs = [-2, -1, -0.9999998807907104, -0.9960784316062927, -0.5, 0, 0.003921499941498041, 0.003921568859368563,
      0.5, 0.9921568632125854, 0.9999998807907104, 1, 1.5, Infinity, -Infinity];
    const expected = [0, 0, 0, 0, 63, 127, 127, 128, 191, 254, 254, 255, 255, 255, 0];
    const F = xs.length;
    // [3, F, 1, 1]: channel c holds xs shifted by c, so the layout change is checked too
    const video = new Float32Array(3 * F);
    for (let c = 0; c < 3; c++) for (let f = 0; f < F; f++) video[c * F + f] = xs[(f + c) % F]!;
    const out = videoToUint8(video, { frames: F, height: 1, width: 1 });
    for (let f = 0; f < F; f++) for (let c = 0; c < 3; c++) assert.equal(out[f * 3 + c], expected[(f + c) % F], `frame ${f} channel ${c}`);
    assert.equal(videoToUint8(new Float32Array([NaN, 0, 0]), { frames: 1, height: 1, width: 1 })[0], 0);
  });

  test("wrong sizes are named", () => {
    assert.throws(() => videoToUint8(new Float32Array(5), { frames: 1, height: 1, width: 2 }), /video has 5 values; \[3, 1, 1, 2\] needs 6/);
    assert.throws(() => videoToUint8(new Float32Array(0), { frames: 0, height: 1, width: 1 }), /dims.frames must be a positive integer, got 0/);
  });
});

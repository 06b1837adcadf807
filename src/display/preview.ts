// Latent previews: Wan2.1's 16-channel latents projected linearly to RGB, the cheap preview
// ComfyUI shows while sampling (its Latent2RGB previewer) — no VAE involved.
import type { Tensor } from "../shared/lab.js";
import { encodePng } from "../video/ffmpeg.js";

// Wan 2.1 latent → RGB factors (rows: latent channel 0..15; columns: R, G, B) and bias, as
// published by ComfyUI in comfy/latent_formats.py, class Wan21 (`latent_rgb_factors`,
// `latent_rgb_factors_bias`). They apply to the sampler's (normalized) latents, which is what the
// engine's denoising loop holds.
export const wan21LatentRgbFactors: readonly (readonly [number, number, number])[] = [
  [-0.1299, -0.1692, 0.2932],
  [0.0671, 0.0406, 0.0442],
  [0.3568, 0.2548, 0.1747],
  [0.0372, 0.2344, 0.142],
  [0.0313, 0.0189, -0.0328],
  [0.0296, -0.0956, -0.0665],
  [-0.3477, -0.4059, -0.2925],
  [0.0166, 0.1902, 0.1975],
  [-0.0412, 0.0267, -0.1364],
  [-0.1293, 0.074, 0.1636],
  [0.068, 0.3019, 0.1128],
  [0.0032, 0.0581, 0.0639],
  [-0.1251, 0.0927, 0.1699],
  [0.006, -0.0633, 0.0005],
  [0.3477, 0.2275, 0.295],
  [0.1984, 0.0913, 0.1861],
];
export const wan21LatentRgbBias: readonly [number, number, number] = [-0.1835, -0.0868, -0.336];

export interface LatentPreview {
  /** PNG of the picked latent frames side by side (upscaled, nearest). */
  png: Buffer;
  width: number;
  height: number;
  /** Which latent frames (of f) it shows. */
  frames: number[];
}

/**
 * RGB bytes [h, w, 3] of latent frame `t` of `latents` [16, f, h, w]: rgb = factorsᵀ·x + bias,
 * then ((rgb + 1) / 2) clamped to [0, 1] × 255, as ComfyUI's preview_to_image does.
 */
export function latentFrameToRgb(latents: Tensor, t: number): Uint8Array {
  const [c, f, h, w] = latents.shape as [number, number, number, number];
  if (latents.shape.length !== 4 || c !== 16) throw new Error(`latent preview: expected latents [16, f, h, w], got [${latents.shape.join(", ")}]`);
  if (t < 0 || t >= f) throw new RangeError(`latent preview: frame ${t} of ${f}`);
  const plane = h * w;
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    let r = wan21LatentRgbBias[0], g = wan21LatentRgbBias[1], b = wan21LatentRgbBias[2];
    for (let k = 0; k < 16; k++) {
      const x = latents.data[(k * f + t) * plane + p]!;
      const m = wan21LatentRgbFactors[k]!;
      r += m[0] * x;
      g += m[1] * x;
      b += m[2] * x;
    }
    out[p * 3] = toByte(r);
    out[p * 3 + 1] = toByte(g);
    out[p * 3 + 2] = toByte(b);
  }
  return out;
}

function toByte(v: number): number {
  return Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
}

/** Up to `maxFrames` latent frames (first to last, evenly spaced), each scaled to about `targetHeight` px. */
export function latentPreview(latents: Tensor, options: { maxFrames?: number; targetHeight?: number } = {}): LatentPreview {
  const [, f, h, w] = latents.shape as [number, number, number, number];
  const n = Math.min(f, options.maxFrames ?? 4);
  const frames = [...new Set(Array.from({ length: n }, (_, i) => (n === 1 ? 0 : Math.round((i * (f - 1)) / (n - 1)))))];
  const s = Math.max(1, Math.round((options.targetHeight ?? 96) / h));
  const W = frames.length * w * s, H = h * s;
  const out = new Uint8Array(W * H * 3);
  frames.forEach((t, k) => {
    const rgb = latentFrameToRgb(latents, t);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < w * s; x++) {
        const src = (Math.floor(y / s) * w + Math.floor(x / s)) * 3;
        const dst = (y * W + k * w * s + x) * 3;
        out[dst] = rgb[src]!;
        out[dst + 1] = rgb[src + 1]!;
        out[dst + 2] = rgb[src + 2]!;
      }
  });
  return { png: encodePng(out, W, H), width: W, height: H, frames };
}

// Decoded video tensors to 8-bit frames, rounded exactly as DiffSynth-Studio rounds them.

export interface VideoDims {
  frames: number;
  height: number;
  width: number;
}

/**
 * [3, F, H, W] floats in [-1, 1] (the VAE decoder's layout) → [F, H, W, 3] RGB bytes.
 *
 * DiffSynth's vae_output_to_image computes ((x - (-1)) * (255 / 2)).clip(0, 255) in the tensor's
 * dtype and casts with .to(torch.uint8), which truncates toward zero: 0.999 → 0, so -1 → 0,
 * 0 → 127, 1 → 255. The arithmetic here is float32 (Math.fround) like a float32 tensor; a bf16
 * decoder output is rounded to bf16 at each step in DiffSynth and is not reproduced. NaN becomes 0.
 */
export function videoToUint8(video: Float32Array, dims: VideoDims): Uint8Array {
  const { frames, height, width } = dims;
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`videoToUint8: dims.${name} must be a positive integer, got ${v}`);
  }
  const plane = height * width;
  const per = frames * plane;
  if (video.length !== 3 * per) {
    throw new Error(`videoToUint8: video has ${video.length} values; [3, ${frames}, ${height}, ${width}] needs ${3 * per}`);
  }
  const out = new Uint8Array(3 * per);
  for (let c = 0; c < 3; c++) {
    const src = c * per;
    for (let i = 0; i < per; i++) {
      const v = Math.fround(Math.fround(video[src + i]! + 1) * 127.5);
      // v >= 0 is false for NaN: NaN → 0, as the cast in practice gives
      out[i * 3 + c] = v >= 0 ? (v >= 255 ? 255 : Math.trunc(v)) : 0;
    }
  }
  return out;
}

"""Golden video-to-video generations: DiffSynth-Studio's WanVideoPipeline with input_video and
denoising_strength, on the tiny model (make_t2v.load_tiny: DiffSynth's modules, float32 on the CPU).

What __call__ does with an input video (diffsynth/pipelines/wan_video.py):
  frames   preprocess_video: each RGB frame as float32 x * (2 / 255) + (-1), stacked [1, 3, F, H, W]
  latents  WanVideoUnit_InputVideoEmbedder: input_latents = vae.encode(video, tiled, tile_size,
           tile_stride); latents = scheduler.add_noise(input_latents, noise, timesteps[0]),
           i.e. (1 - sigma_0) * input_latents + sigma_0 * noise
  sampler  FlowMatchScheduler("Wan").set_timesteps(steps, denoising_strength, shift): sigmas start
           at the strength, so only the last part of the schedule runs
then the text-to-video loop and decode, as make_t2v.py. The input frames are a deterministic
pattern (moving colour bands), stored as bytes beside the float video made from them, so the
kernel's frame conversion is checked against DiffSynth's preprocessing too.

  PYTHONPATH=<torch 2.13>:.cache/pydeps:test/golden python3 test/golden/make_v2v.py --diffsynth DIR

Writes test/golden/data/v2v.safetensors: per case `frames` [F, H, W, 3] uint8, `input_video`
[3, F, H, W] float32, prompt/negative ids and masks, `latents` and `video`, and the parameters as
JSON metadata.
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import make_t2v
import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CASES = [
    # name, prompt, negative, seed, height, width, frames, steps, cfg, shift, strength, tiled (size, stride)
    ("cfg_strength_0.7", "a cat walks on the street at night", "blurry", 11, 48, 64, 5, 6, 5.0, 5.0, 0.7, None),
    ("cfg1_tiled_0.4", "waves on a beach", "", 3, 64, 96, 9, 5, 1.0, 3.0, 0.4, ((4, 4), (2, 2))),
]


def pattern(frames, height, width):
    """[F, H, W, 3] uint8: colour bands that move one pixel per frame, and a frame-dependent tint."""
    f = np.arange(frames).reshape(-1, 1, 1)
    y = np.arange(height).reshape(1, -1, 1)
    x = np.arange(width).reshape(1, 1, -1)
    r = (x * 7 + f * 3) % 256
    g = (y * 5 + x * 2) % 256
    b = (128 + 100 * np.sin((x + y + f) / 9.0)).astype(np.int64) % 256
    return np.stack([r + 0 * y, g + 0 * f, b], axis=-1).astype(np.uint8)


def preprocess(frames):
    """BasePipeline.preprocess_video on these frames: [1, 3, F, H, W] float32 in [-1, 1]."""
    video = [torch.Tensor(np.array(img, dtype=np.float32)) * ((1 - -1) / 255) + -1 for img in frames]
    return torch.stack([v.permute(2, 0, 1) for v in video], dim=1).unsqueeze(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", "v2v.safetensors"))
    args = ap.parse_args()
    dit, model_fn, fm, vae, tokens, encode = make_t2v.load_tiny(reference.diffsynth_dir(args.diffsynth), args.engine)
    out, meta = {}, {"torch": torch.__version__}
    with torch.no_grad():
        for name, prompt, negative, seed, height, width, frames, steps, cfg, shift, strength, tiles in CASES:
            (ids, mask), (nids, nmask), posi, nega, _, noise = make_t2v.prepare(
                fm, tokens, encode, prompt, negative, seed, height, width, frames, steps, shift)
            sched = fm.FlowMatchScheduler("Wan")
            sched.set_timesteps(steps, denoising_strength=strength, shift=shift)
            rgb = pattern(frames, height, width)
            video_in = preprocess(rgb)
            kw = {"tiled": tiles is not None}
            if tiles:
                kw.update(tile_size=tiles[0], tile_stride=tiles[1])
            input_latents = vae.encode(video_in, device="cpu", **kw).to(dtype=torch.float32)
            latents = sched.add_noise(input_latents, noise, timestep=sched.timesteps[0])
            latents = make_t2v.denoise(dit, model_fn, sched, latents, posi, nega, cfg)
            video = vae.decode(latents, device="cpu", **kw)[0]
            p = name + "."
            out[p + "frames"] = torch.from_numpy(rgb).contiguous()
            out[p + "input_video"] = video_in[0].contiguous()
            out[p + "prompt_ids"], out[p + "prompt_mask"] = ids, mask
            out[p + "negative_ids"], out[p + "negative_mask"] = nids, nmask
            out[p + "input_latents"] = input_latents[0].contiguous()
            out[p + "latents"] = latents[0].contiguous()
            out[p + "video"] = video.contiguous()
            meta[name] = json.dumps({"prompt": prompt, "negative_prompt": negative, "seed": str(seed), "height": height,
                                     "width": width, "num_frames": frames, "num_inference_steps": steps, "cfg_scale": cfg,
                                     "sigma_shift": shift, "denoising_strength": strength, "tiled": tiles is not None,
                                     "tile_size": tiles[0] if tiles else None, "tile_stride": tiles[1] if tiles else None})
            print(f"{name}: sigma_0 {sched.sigmas[0]:.4f}, |input latents| {input_latents.norm():.4f}, |latents| {latents.norm():.4f}")
    meta["cases"] = json.dumps([c[0] for c in CASES])
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()

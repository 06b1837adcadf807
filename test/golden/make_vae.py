"""Golden data for the Wan2.1 VAE: DiffSynth-Studio's own WanVideoVAE on the tiny model.

Made with DiffSynth-Studio at commit fed7b18f (diffsynth/models/wan_video_vae.py), run as the
pipeline runs it (diffsynth/pipelines/wan_video.py):
  video   = WanVideoVAE.decode([z], device, tiled, tile_size, tile_stride)   # z: [16, f, h, w]
  latents = WanVideoVAE.encode([video], device, tiled, tile_size, tile_stride)
in float32 on the CPU. WanVideoVAE always builds VideoVAE_ with base dim 96; here its `model` is
replaced by a VideoVAE_ with the base dim read from the weights (8 for the tiny model), and the
official Wan2.1_VAE.pth is loaded through DiffSynth's own state-dict converter (which prefixes
"model.").

The tiny model is written by `wanlab-engine make-tiny DIR` (official layout, seed 0), the same
model the C++ tests build with wantest::tiny_model().

Usage (from the repository root):
  PYTHONPATH=.cache/pydeps:test/golden /usr/bin/python3 test/golden/make_vae.py \
      --diffsynth /work/ref/DiffSynth-Studio [--engine native/build/wanlab-engine]
Writes test/golden/data/vae.safetensors: for each case <case>.in and <case>.out (batch dim
dropped), and the tile settings in the metadata.
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch

import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", "vae.safetensors"))
    args = ap.parse_args()
    root = reference.diffsynth_dir(args.diffsynth)
    vae_mod = reference.import_diffsynth(root, "models.wan_video_vae")
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.engine, "make-tiny", tmp], check=True, stdout=subprocess.DEVNULL)
        _, _, state = reference.load_official(tmp)

    base_dim = state["encoder.conv1.weight"].shape[0]
    z_dim = state["conv2.weight"].shape[0]
    vae = vae_mod.WanVideoVAE(z_dim=z_dim)
    vae.model = vae_mod.VideoVAE_(dim=base_dim, z_dim=z_dim).eval().requires_grad_(False)
    sd = vae_mod.WanVideoVAE.state_dict_converter().from_civitai(state)
    vae.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    vae = vae.float().eval()

    tensors, meta = {}, {"diffsynth_commit": "fed7b18f", "base_dim": str(base_dim)}

    def decode(name, shape, seed, tiled=False, tile_size=None, tile_stride=None):
        torch.manual_seed(seed)
        z = torch.randn(*shape)
        kw = dict(tiled=tiled)
        if tiled:
            kw.update(tile_size=tile_size, tile_stride=tile_stride)
            meta[name] = json.dumps({"tile_size": tile_size, "tile_stride": tile_stride})
        with torch.no_grad():
            video = vae.decode([z], "cpu", **kw)[0]
        tensors[name + ".in"], tensors[name + ".out"] = z.contiguous(), video.contiguous()
        print(f"{name}: z {list(z.shape)} -> video {list(video.shape)}, |video| max {video.abs().max():.4f}")

    def encode(name, shape, seed, tiled=False, tile_size=None, tile_stride=None):
        torch.manual_seed(seed)
        video = torch.rand(*shape) * 2 - 1
        kw = dict(tiled=tiled)
        if tiled:
            kw.update(tile_size=tile_size, tile_stride=tile_stride)
            meta[name] = json.dumps({"tile_size": tile_size, "tile_stride": tile_stride})
        with torch.no_grad():
            z = vae.encode([video], "cpu", **kw)[0]
        tensors[name + ".in"], tensors[name + ".out"] = video.contiguous(), z.contiguous()
        print(f"{name}: video {list(video.shape)} -> z {list(z.shape)}")

    decode("decode_single", (16, 1, 4, 4), 1)
    decode("decode_video", (16, 3, 5, 7), 2)
    # Tiles (8, 8) every (4, 4) on a 12 x 14 latent: 2 x 3 tiles that overlap by half, the last
    # column cut short by the edge (DiffSynth slices past the end).
    decode("decode_tiled", (16, 2, 12, 14), 3, tiled=True, tile_size=(8, 8), tile_stride=(4, 4))
    encode("encode_video", (3, 5, 32, 24), 4)
    # Tile sizes are in latent units (DiffSynth multiplies by 8 for encoding).
    encode("encode_tiled", (3, 5, 48, 40), 5, tiled=True, tile_size=(4, 4), tile_stride=(2, 2))

    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()

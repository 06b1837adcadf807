"""Golden data for the Wan2.1 DiT: DiffSynth-Studio's own WanModel on the tiny model.

Made with DiffSynth-Studio at commit fed7b18f (diffsynth/models/wan_video_dit.py), called through
DiffSynth's own model_fn_wan_video (diffsynth/pipelines/wan_video.py), text-to-video path:
  model_fn_wan_video(dit, latents=x[None], timestep=t, context=ctx[None])
    t   = dit.time_embedding(sinusoidal_embedding_1d(dit.freq_dim, timestep))
    t_mod = dit.time_projection(t).unflatten(1, (6, dim)); context = dit.text_embedding(context)
    patchify (Conv3d) -> freqs from dit.freqs (3-D RoPE) -> blocks -> dit.head(x, t) -> unpatchify
in float32 on the CPU. wan_video.py itself cannot be imported here (it pulls in every Wan variant
and transformers' audio models), so model_fn_wan_video's source is taken from the file with `ast`
and run against the real WanModel; the branches for other variants are stubbed out (never taken).
The timestep is a [1] tensor of the pipeline dtype (float32 here), as WanVideoPipeline passes it;
the context is [1, L, text_dim] with zeros past the prompt length, as the prompter pads it.

The tiny model is written by `wanlab-engine make-tiny DIR` (official layout, seed 0), the same
model the C++ tests build with wantest::tiny_model().

Usage (from the repository root):
  PYTHONPATH=.cache/pydeps:test/golden /usr/bin/python3 test/golden/make_dit.py \
      --diffsynth /work/ref/DiffSynth-Studio [--engine native/build/wanlab-engine]
Writes test/golden/data/dit.safetensors: for each case <case>.x [16, f, h, w], <case>.timestep [1]
(float32), <case>.context [L, text_dim], <case>.out [16, f, h, w]; and rope.freqs, DiffSynth's
RoPE table for a (2, 3, 4) grid as view_as_real: [24, head_dim/2, 2] float64.
"""
import argparse
import ast
import json
import os
import subprocess
import tempfile
import typing

import torch

import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_model_fn(root, dit_mod, gradient_mod):
    """model_fn_wan_video from diffsynth/pipelines/wan_video.py, annotations dropped."""
    path = os.path.join(root, "diffsynth", "pipelines", "wan_video.py")
    tree = ast.parse(open(path).read(), path)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "model_fn_wan_video")
    for a in fn.args.args + fn.args.kwonlyargs:
        a.annotation = None
    fn.returns = None

    class NeverThis:  # isinstance() targets of other model families
        pass

    from einops import rearrange

    ns = {
        "torch": torch, "rearrange": rearrange, "Optional": typing.Optional,
        "WanModel": dit_mod.WanModel, "sinusoidal_embedding_1d": dit_mod.sinusoidal_embedding_1d,
        "gradient_checkpoint_forward": gradient_mod.gradient_checkpoint_forward,
        "LongCatVideoTransformer3DModel": NeverThis, "WanAnimate2Transformer": NeverThis,
    }
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), ns)
    return ns["model_fn_wan_video"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", "dit.safetensors"))
    args = ap.parse_args()
    root = reference.diffsynth_dir(args.diffsynth)
    dit_mod = reference.import_diffsynth(root, "models.wan_video_dit")
    gradient_mod = reference.import_diffsynth(root, "core.gradient")
    model_fn = load_model_fn(root, dit_mod, gradient_mod)

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.engine, "make-tiny", tmp], check=True, stdout=subprocess.DEVNULL)
        state, _, _ = reference.load_official(tmp)
        config = json.load(open(os.path.join(tmp, "config.json")))

    dim, text_dim = state["text_embedding.0.weight"].shape
    patch = tuple(state["patch_embedding.weight"].shape[2:])
    num_layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    dit = dit_mod.WanModel(
        dim=dim, in_dim=config["in_dim"], ffn_dim=config["ffn_dim"], out_dim=config["out_dim"],
        text_dim=text_dim, freq_dim=config["freq_dim"], eps=config["eps"], patch_size=patch,
        num_heads=config["num_heads"], num_layers=num_layers, has_image_input=False)
    assert dim == config["dim"] and num_layers == config["num_layers"]
    dit.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    dit = dit.float().eval().requires_grad_(False)

    tensors, meta = {}, {"diffsynth_commit": "fed7b18f"}

    def case(name, shape, timestep, ctx_len, seed, L=16):
        torch.manual_seed(seed)
        x = torch.randn(*shape)
        ctx = torch.randn(L, text_dim)
        ctx[ctx_len:] = 0  # the prompter zeroes the embedding past the prompt's tokens
        t = torch.tensor([timestep], dtype=torch.float32)
        with torch.no_grad():
            out = model_fn(dit, latents=x[None], timestep=t, context=ctx[None])[0]
        assert out.shape == x.shape and out.dtype == torch.float32
        for k, v in {"x": x, "timestep": t, "context": ctx, "out": out}.items():
            tensors[f"{name}.{k}"] = v.contiguous()
        print(f"{name}: x {list(x.shape)} t {timestep} ctx_len {ctx_len} -> |out| rms {out.pow(2).mean().sqrt():.4f}")

    case("single_frame", (16, 1, 8, 8), 999.0, 11, 1)
    case("non_square", (16, 3, 6, 10), 500.5, 16, 2)
    case("small_t", (16, 2, 4, 4), 3.2, 5, 3)

    # The RoPE table DiffSynth builds for a (2, 3, 4) grid, exactly as model_fn_wan_video does.
    f, h, w = 2, 3, 4
    freqs = torch.cat([
        dit.freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
        dit.freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
        dit.freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
    ], dim=-1).reshape(f * h * w, -1)
    assert freqs.dtype == torch.complex128
    tensors["rope.freqs"] = torch.view_as_real(freqs).contiguous()

    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()

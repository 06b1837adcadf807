"""The PyTorch-eager peer of `wanlab-engine bench`: DiffSynth-Studio's own module on our weights.

Invoked by native/src/tools/bench_models.cpp as `python peer.py SPEC.json`. SPEC names the kind
(dit | vae | t5), the architecture (wanlab's arch JSON), the weights (safetensors, canonical =
official Wan2.1 names, bf16), the input (safetensors), warmup/iters/threads, the DiffSynth source
tree, and where to write the output tensor ("out") and the result JSON. The module is built as
test/golden/make_{dit,vae,t5}.py build it (reference.import_diffsynth, make_dit.load_model_fn):
  dit: WanModel, called through DiffSynth's model_fn_wan_video (text-to-video path)
  vae: WanVideoVAE (VideoVAE_ with the arch's base dim), decode([z], "cpu", tiled=False)
  t5:  WanTextEncoder(ids, mask), the raw encoder output
in float32 under torch.no_grad() (as WanVideoPipeline.__call__), torch.set_num_threads(threads).
On CUDA (SPEC "device": "cuda:N", "dtype": "bf16"), the module and its inputs are in that dtype on
the device, as WanVideoPipeline(torch_dtype=torch.bfloat16) holds them, and the weights are not in a
file: SPEC "random" {seed, specs} says how to draw them with the CUDA generator, by the recipe of
native/src/models/random_weights.cpp (random_tensor), so both sides run the same numbers.
Timing: `warmup` untimed forwards, then `iters` timed ones (time.perf_counter, the device
synchronised around each). Memory: VmHWM of this process, reset (clear_refs 5) just before the
forwards; on CUDA also torch.cuda's peak allocated bytes.

PyTorch 2.13 CPU: PYTHONPATH=/work/ref/torch213:/work/main/.cache/pydeps python3 bench/peer.py ...
(test/golden and .cache/pydeps of this repository are added to sys.path here).
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "test", "golden"))
if os.path.isdir(os.path.join(REPO, ".cache", "pydeps")):
    sys.path.append(os.path.join(REPO, ".cache", "pydeps"))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import reference  # noqa: E402


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return -1


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


MASK64 = (1 << 64) - 1


def name_seed(name, seed):
    """FNV-1a of the name, started from seed * 0x9E3779B97F4A7C15 + 1 (random_weights.cpp)."""
    h = (seed * 0x9E3779B97F4A7C15 + 1) & MASK64
    for c in name.encode():
        h = ((h ^ c) * 1099511628211) & MASK64
    return h


def f32(v):
    return torch.tensor(v, dtype=torch.float32)


def random_tensor(name, shape, seed, device):
    """random_tensor() of random_weights.cpp on a CUDA device: same generator, ops and rounding."""
    g = torch.Generator(device=device)
    g.manual_seed(name_seed(name, seed))
    x = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
    if name.endswith(".gamma") or ("norm" in name and name.endswith(".weight")):
        x = x.mul_(0.1).add_(1.0)
    elif name.endswith(".bias"):
        x = x.mul_(0.02)
    elif name.endswith("modulation"):
        x = x.mul_((f32(1.0) / torch.sqrt(f32(float(shape[-1])))).item())  # float32 arithmetic, as in C++
    elif "token_embedding" in name or "pos_embedding" in name:
        pass
    elif len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        x = x.mul_((f32(1.0) / torch.sqrt(f32(float(fan_in)))).item())
    return x.to(torch.bfloat16).to(torch.float16).to(torch.float32)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def build(ctor, state):
    """ctor() with `state` loaded strictly; on PyTorch >= 2.1 without a random init (meta + assign)."""
    try:
        with torch.device("meta"):
            m = ctor()
        m.load_state_dict(state, strict=True, assign=True)
        if not any(t.is_meta for t in list(m.parameters()) + list(m.buffers())):
            return m
    except (AttributeError, TypeError, RuntimeError):
        pass
    m = ctor()
    m.load_state_dict(state, strict=True)
    return m


def main():
    spec = json.load(open(sys.argv[1]))
    kind, arch, root = spec["kind"], spec["arch"], spec["diffsynth"]
    device = spec.get("device", "cpu")
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[spec.get("dtype", "f32")]
    torch.set_num_threads(int(spec["threads"]))
    if spec.get("weights"):
        weights = load_file(spec["weights"])
        state = {k: v.to(device, dtype) for k, v in weights.items()}
        del weights
    else:
        r = spec["random"]
        state = {s["name"]: random_tensor(s["name"], s["shape"], int(r["seed"]), device).to(dtype) for s in r["specs"]}
    inp = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in load_file(spec["input"]).items()}

    if kind == "dit":
        dit_mod = reference.import_diffsynth(root, "models.wan_video_dit")
        gradient_mod = reference.import_diffsynth(root, "core.gradient")
        import make_dit

        model_fn = make_dit.load_model_fn(root, dit_mod, gradient_mod)
        dit = build(lambda: dit_mod.WanModel(
            dim=arch["dim"], in_dim=arch["in_dim"], ffn_dim=arch["ffn_dim"], out_dim=arch["out_dim"],
            text_dim=arch["text_dim"], freq_dim=arch["freq_dim"], eps=arch["eps"],
            patch_size=tuple(arch["patch_size"]), num_heads=arch["num_heads"], num_layers=arch["num_layers"],
            has_image_input=False), state)
        # The RoPE table is a plain attribute computed in __init__, not state: a meta-device build
        # leaves it empty, so compute it as the constructor does (complex64, on the CPU).
        if any(f.is_meta for f in dit.freqs):
            with torch.device("cpu"):
                dit.freqs = dit_mod.precompute_freqs_cis_3d(arch["dim"] // arch["num_heads"])
        dit = dit.to(device, dtype).eval().requires_grad_(False)
        x, t, ctx = inp["x"], inp["timestep"], inp["context"]

        def forward():
            return model_fn(dit, latents=x[None], timestep=t, context=ctx[None])[0]

        impl = "DiffSynth WanModel via model_fn_wan_video"
    elif kind == "vae":
        vae_mod = reference.import_diffsynth(root, "models.wan_video_vae")
        vae = vae_mod.WanVideoVAE(z_dim=arch["z_dim"])
        vae.model = vae_mod.VideoVAE_(
            dim=arch["dim"], z_dim=arch["z_dim"], dim_mult=arch["dim_mult"], num_res_blocks=arch["num_res_blocks"],
            temperal_downsample=arch["temporal_downsample"]).eval().requires_grad_(False)
        vae.load_state_dict(vae_mod.WanVideoVAE.state_dict_converter().from_civitai(state), strict=True)
        vae = vae.to(device, dtype).eval()
        z = inp["z"]

        def forward():
            return vae.decode([z], device, tiled=False)[0]

        impl = "DiffSynth WanVideoVAE.decode(tiled=False)"
    elif kind == "t5":
        te = reference.import_diffsynth(root, "models.wan_video_text_encoder")
        kw = {k: arch[k] for k in ["vocab", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers", "num_buckets",
                                    "shared_pos"]}
        model = build(lambda: te.WanTextEncoder(**kw), state).to(device, dtype).eval()
        ids, mask = inp["ids"], inp["mask"]

        def forward():
            return model(ids, mask)

        impl = "DiffSynth WanTextEncoder"
    else:
        sys.exit(f"peer: unknown kind '{kind}'")
    del state

    times = []
    cuda = device.startswith("cuda")
    with torch.no_grad():
        reset = reset_peak()
        rss_before = status_bytes("VmRSS:")
        if cuda:
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
        dev_before = torch.cuda.memory_allocated(device) if cuda else 0
        out = None
        for _ in range(int(spec["warmup"])):
            out = forward()
        sync(device)
        for _ in range(int(spec["iters"])):
            out = None
            t0 = time.perf_counter()
            out = forward()
            sync(device)
            times.append(time.perf_counter() - t0)
        peak = status_bytes("VmHWM:")
        dev_peak = torch.cuda.max_memory_allocated(device) if cuda else 0
    save_file({"out": out.float().cpu().contiguous()}, spec["output"])

    commit = None
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    result = {
        "impl": f"{impl}, PyTorch {torch.__version__} eager {str(dtype).replace('torch.', '')} {device}",
        "torch_version": torch.__version__,
        "diffsynth_dir": root,
        "diffsynth_commit": commit,
        "threads": torch.get_num_threads(),
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak,
        "peak_rss_delta_bytes": peak - rss_before,
        "peak_reset": reset,
        "device": device,
        "device_weights_bytes": dev_before,
        "device_peak_bytes": dev_peak,
        "device_activation_peak_bytes": dev_peak - dev_before,
    }
    with open(spec["result"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

"""The PyTorch-eager peer of `wanlab-engine bench`: DiffSynth-Studio's own module on our weights.

Invoked by native/src/bench/bench_models.cpp as `python peer.py SPEC.json`. SPEC names the kind
(dit | vae | t5), the architecture (wanlab's arch JSON), the weights (safetensors, canonical =
official Wan2.1 names, bf16), the input (safetensors), warmup/iters/threads, the DiffSynth source
tree, and where to write the output tensor ("out") and the result JSON. The module is built as
test/golden/make_{dit,vae,t5}.py build it (reference.import_diffsynth, make_dit.load_model_fn):
  dit: WanModel, called through DiffSynth's model_fn_wan_video (text-to-video path)
  vae: WanVideoVAE (VideoVAE_ with the arch's base dim), decode([z], "cpu", tiled=False)
  t5:  WanTextEncoder(ids, mask), the raw encoder output
in float32 under torch.no_grad() (as WanVideoPipeline.__call__), torch.set_num_threads(threads).
Timing: `warmup` untimed forwards, then `iters` timed ones (time.perf_counter). Memory: VmHWM of
this process, reset (clear_refs 5) just before the forwards.

PyTorch 2.13 CPU: PYTHONPATH=/work/ref/torch213:/work/main/.cache/pydeps python3 bench/peer.py ...
(test/golden and .cache/pydeps of this repository are added to sys.path here).
"""
import json
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
    torch.set_num_threads(int(spec["threads"]))
    weights = load_file(spec["weights"])
    state = {k: v.float() for k, v in weights.items()}
    del weights
    inp = load_file(spec["input"])

    if kind == "dit":
        dit_mod = reference.import_diffsynth(root, "models.wan_video_dit")
        gradient_mod = reference.import_diffsynth(root, "core.gradient")
        import make_dit

        model_fn = make_dit.load_model_fn(root, dit_mod, gradient_mod)
        dit = dit_mod.WanModel(
            dim=arch["dim"], in_dim=arch["in_dim"], ffn_dim=arch["ffn_dim"], out_dim=arch["out_dim"],
            text_dim=arch["text_dim"], freq_dim=arch["freq_dim"], eps=arch["eps"],
            patch_size=tuple(arch["patch_size"]), num_heads=arch["num_heads"], num_layers=arch["num_layers"],
            has_image_input=False)
        dit.load_state_dict(state, strict=True)
        dit = dit.float().eval().requires_grad_(False)
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
        vae = vae.float().eval()
        z = inp["z"]

        def forward():
            return vae.decode([z], "cpu", tiled=False)[0]

        impl = "DiffSynth WanVideoVAE.decode(tiled=False)"
    elif kind == "t5":
        te = reference.import_diffsynth(root, "models.wan_video_text_encoder")
        kw = {k: arch[k] for k in ["vocab", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers", "num_buckets",
                                    "shared_pos"]}
        model = build(lambda: te.WanTextEncoder(**kw), state).float().eval()
        ids, mask = inp["ids"], inp["mask"]

        def forward():
            return model(ids, mask)

        impl = "DiffSynth WanTextEncoder"
    else:
        sys.exit(f"peer: unknown kind '{kind}'")
    del state

    times = []
    with torch.no_grad():
        reset = reset_peak()
        rss_before = status_bytes("VmRSS:")
        out = None
        for _ in range(int(spec["warmup"])):
            out = forward()
        for _ in range(int(spec["iters"])):
            out = None
            t0 = time.perf_counter()
            out = forward()
            times.append(time.perf_counter() - t0)
        peak = status_bytes("VmHWM:")
    save_file({"out": out.float().contiguous()}, spec["output"])

    commit = None
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    result = {
        "impl": f"{impl}, PyTorch {torch.__version__} eager float32 CPU",
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
    }
    with open(spec["result"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

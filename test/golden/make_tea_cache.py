"""Golden TeaCache generations: DiffSynth-Studio's text-to-video loop with tea_cache_l1_thresh.

WanVideoPipeline.__call__ gives the prompt and the negative prompt one TeaCache each
(WanVideoUnit_TeaCache) and model_fn_wan_video asks it per evaluation whether to skip the blocks
(TeaCache.check on t_mod) and, when it computes them, keeps their residual (TeaCache.store). Here
that loop runs on the tiny model (make_t2v.load_tiny: the same modules, float32 on the CPU) with
DiffSynth's own TeaCache class and model_fn, both lifted from diffsynth/pipelines/wan_video.py
with `ast` (the file cannot be imported without every other Wan variant's dependencies).

The calibrations are the 1.3B's and the 14B's, made for trained models whose t_mod moves by a few
percent between steps. The tiny model's random time MLP moves it by 60-130 %, where the
calibration polynomial is far negative and every step would skip; so these cases raise the tiny
model's time_projection bias by TIME_BIAS (4.0: t_mod then moves by 3-5 % a step, rescaled to
0.10-0.17, as a trained model's does), and the C++ test makes the same change to its copy. The
thresholds skip some steps and compute others, with the accumulated sums at least MARGIN away
from the threshold (checked here), so float rounding cannot flip a decision.

  PYTHONPATH=<torch 2.13>:.cache/pydeps:test/golden python3 test/golden/make_tea_cache.py --diffsynth DIR

Writes test/golden/data/tea_cache.safetensors: per case the prompt/negative ids and masks, the
latents before the VAE and `skipped` (int64: 1 where the prompt's TeaCache skipped the blocks),
and the case's parameters as JSON metadata.
"""
import argparse
import ast
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import make_t2v
import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

TIME_BIAS = 4.0
MARGIN = 0.005
CASES = [
    # name, prompt, negative, seed, height, width, frames, steps, cfg, shift, thresh, model id
    ("cfg_1.3B", "A cat walks on the street at night.", "blurry", 42, 48, 64, 5, 12, 5.0, 5.0, 0.25, "Wan2.1-T2V-1.3B"),
    ("cfg1_14B", "a red car on the beach, cinematic", "", 7, 32, 48, 1, 10, 1.0, 3.0, 0.3, "Wan2.1-T2V-14B"),
]


def load_tea_cache(root):
    path = os.path.join(root, "diffsynth", "pipelines", "wan_video.py")
    tree = ast.parse(open(path).read(), path)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TeaCache")
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef):
            for a in fn.args.args:
                a.annotation = None
    ns = {"np": np, "torch": torch}
    exec(compile(ast.Module(body=[cls], type_ignores=[]), path, "exec"), ns)
    return ns["TeaCache"]


def run(dit, model_fn, fm, tokens, encode, TeaCache, case, thresh):
    name, prompt, negative, seed, height, width, frames, steps, cfg, shift, _, model_id = case
    (ids, mask), (nids, nmask), posi, nega, sched, latents = make_t2v.prepare(
        fm, tokens, encode, prompt, negative, seed, height, width, frames, steps, shift)
    cache_posi = TeaCache(steps, rel_l1_thresh=thresh, model_id=model_id)
    cache_nega = TeaCache(steps, rel_l1_thresh=thresh, model_id=model_id)
    decisions = {id(cache_posi): [], id(cache_nega): []}
    check = TeaCache.check

    def logged(self, dit_, x, t_mod):  # DiffSynth's check, its answer kept
        skip = check(self, dit_, x, t_mod)
        decisions[id(self)].append(1 if skip else 0)
        return skip

    for i, t in enumerate(sched.timesteps):
        timestep = t.unsqueeze(0).to(dtype=torch.float32)
        TeaCache.check = logged
        try:
            v = model_fn(dit, latents=latents, timestep=timestep, context=posi, tea_cache=cache_posi)
            if cfg != 1.0:
                vn = model_fn(dit, latents=latents, timestep=timestep, context=nega, tea_cache=cache_nega)
                v = vn + cfg * (v - vn)
        finally:
            TeaCache.check = check
        latents = sched.step(v, sched.timesteps[i], latents)
    skipped = decisions[id(cache_posi)]
    assert cfg == 1.0 or decisions[id(cache_nega)] == skipped, "the two branches decided differently"
    return ids, mask, nids, nmask, latents, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", "tea_cache.safetensors"))
    args = ap.parse_args()
    root = reference.diffsynth_dir(args.diffsynth)
    dit, model_fn, fm, _, tokens, encode = make_t2v.load_tiny(root, args.engine)
    TeaCache = load_tea_cache(root)
    out, meta = {}, {"torch": torch.__version__, "time_bias": json.dumps(TIME_BIAS)}
    with torch.no_grad():
        dit.time_projection[1].bias.add_(TIME_BIAS)
        for case in CASES:
            name, prompt, negative, seed, height, width, frames, steps, cfg, shift, thresh, model_id = case
            check_margins(root, dit, fm, TeaCache, case)
            ids, mask, nids, nmask, latents, skipped = run(dit, model_fn, fm, tokens, encode, TeaCache, case, thresh)
            p = name + "."
            out[p + "prompt_ids"], out[p + "prompt_mask"] = ids, mask
            out[p + "negative_ids"], out[p + "negative_mask"] = nids, nmask
            out[p + "latents"] = latents[0].contiguous()
            out[p + "skipped"] = torch.tensor(skipped, dtype=torch.long)
            meta[name] = json.dumps({"seed": str(seed), "height": height, "width": width, "num_frames": frames,
                                     "num_inference_steps": steps, "cfg_scale": cfg, "sigma_shift": shift,
                                     "tea_cache_l1_thresh": thresh, "tea_cache_model_id": model_id})
            print(f"{name}: skipped {''.join(map(str, skipped))}, |latents| {latents.norm():.4f}")
    meta["cases"] = json.dumps([c[0] for c in CASES])
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) with torch {torch.__version__}")


def check_margins(root, dit, fm, TeaCache, case):
    """The sums DiffSynth's TeaCache compares with the threshold stay MARGIN away from it."""
    name, *_, steps, _, shift, thresh, model_id = case
    sinusoid = reference.import_diffsynth(root, "models.wan_video_dit").sinusoidal_embedding_1d
    poly = np.poly1d(TeaCache(steps, rel_l1_thresh=thresh, model_id=model_id).coefficients)
    sched = fm.FlowMatchScheduler("Wan")
    sched.set_timesteps(steps, denoising_strength=1.0, shift=shift)
    acc, prev = 0.0, None
    for i, t in enumerate(sched.timesteps):
        t_mod = dit.time_projection(dit.time_embedding(sinusoid(dit.freq_dim, t.unsqueeze(0).to(torch.float32))))
        t_mod = t_mod.unflatten(1, (6, dit.dim))
        if 0 < i < steps - 1:
            acc += poly(((t_mod - prev).abs().mean() / prev.abs().mean()).item())
            assert abs(acc - thresh) > MARGIN, f"{name}: step {i}: sum {acc} within {MARGIN} of {thresh}"
            if acc >= thresh:
                acc = 0.0
        else:
            acc = 0.0
        prev = t_mod


if __name__ == "__main__":
    main()

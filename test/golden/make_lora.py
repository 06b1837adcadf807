"""Golden LoRA data: tiny LoRAs for the tiny model in each naming wanlab reads, and DiffSynth-Studio's
latents with them.

Two LoRAs, stacked at scales 0.7 and -0.3 as DiffSynth's BasePipeline.load_lora fuses them
(diffsynth/diffusion/base_pipeline.py and diffsynth/utils/lora/general.py at commit fed7b18f:
GeneralLoRALoader.convert_state_dict, then fuse_lora_to_base_model: W += alpha * lora_B @ lora_A,
lora_A scaled by alpha_file / rank where the file has an alpha):
  LoRA 1, rank 4, kohya style with alpha 2 under ComfyUI's prefix
         (diffusion_model.<module>.lora_down.weight / .lora_up.weight / .alpha): the block linears
         and text_embedding.0. The same update is also written in every other naming, with
         lora_A already times alpha / rank (computed as DiffSynth computes it, so the fused weights
         are the same bits):
           lora1_peft         <module>.lora_A.weight / .lora_B.weight
           lora1_peft_default <module>.lora_A.default.weight / .lora_B.default.weight
           lora1_diffusers    transformer.<diffusers module>.lora_A.weight (attn1.to_q, ffn.net.0.proj, ...)
           lora1_kohya_flat   lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha
  LoRA 2, rank 2, PEFT naming: cross-attention k, v, self-attention q and head.head.
  lora1_diff: LoRA 1's updates of block 0's self-attention q and cross-attention o as full-weight
         differences (<module>.diff = lora_B @ lora_A), plus diff_b on
         block 0's self-attention q bias and a diff of block 1's norm3 weight; its reference adds
         0.7 * diff to the DiffSynth model's parameters directly (ComfyUI's meaning of diff/diff_b).
Latents: make_t2v's loop (WanVideoPipeline text-to-video, float32 CPU), 48x64, 5 frames, 3 steps,
CFG 5: `base` without LoRAs, `fused` with LoRA 1 (kohya file) at 0.7 then LoRA 2 at -0.3,
`diff` with lora1_diff at 0.7 then LoRA 2 at -0.3; `hot` the `fused` case on DiffSynth's hot-loaded
path (BasePipeline.enable_lora_hot_loading wraps each Linear in AutoWrappedLinear, load_lora with
hotload=True: out + x @ (scale * lora_A).T @ lora_B.T at every forward, the base weights untouched).
The distilled-LoRA use case, 4 steps without CFG (cfg_scale 1, no negative prompt pass):
`distilled.latents` with the fused LoRAs, `distilled_hot.latents` hot-loaded, `distilled_base.latents`
without LoRAs.

  PYTHONPATH=.cache/torch-2:.cache/pydeps:test/golden python3 test/golden/make_lora.py --diffsynth DIR
"""
import argparse
import ast
import copy
import json
import os
import types
from typing import Union

import torch
from safetensors.torch import load_file, save_file

import make_t2v
import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPT, NEGATIVE, SEED, HEIGHT, WIDTH, FRAMES, STEPS, CFG, SHIFT = (
    "a small boat on a lake at dawn", "blurry", 11, 48, 64, 5, 3, 5.0, 5.0)
SCALES = (0.7, -0.3)
DISTILLED_STEPS = 4  # with cfg_scale 1
DIFFUSERS = {"self_attn": "attn1", "cross_attn": "attn2", "q": "to_q", "k": "to_k", "v": "to_v", "o": "to_out.0"}


def diffusers_name(module):
    """blocks.N.self_attn.q -> blocks.N.attn1.to_q; blocks.N.ffn.0 -> blocks.N.ffn.net.0.proj."""
    if module == "text_embedding.0":
        return "condition_embedder.text_embedder.linear_1"
    p = module.split(".")
    if p[2] == "ffn":
        return ".".join(p[:2]) + (".ffn.net.0.proj" if p[3] == "0" else ".ffn.net.2")
    return ".".join(p[:2] + [DIFFUSERS[p[2]], DIFFUSERS[p[3]]])


def make_pairs(dit_sd, modules, rank, gen):
    """Per module (up [out, r], down [r, in]) whose update is ~20 % of the weight's spread."""
    pairs = {}
    for m in modules:
        w = dit_sd[m + ".weight"]
        s = (0.2 * float(w.float().std()) / rank ** 0.5) ** 0.5
        pairs[m] = (torch.randn(w.shape[0], rank, generator=gen) * s, torch.randn(rank, w.shape[1], generator=gen) * s)
    return pairs


def pipeline_methods(root, *names):
    """BasePipeline's methods `names`, compiled from DiffSynth's diffusion/base_pipeline.py with the
    names they use (its module imports PIL, transformers and every model loader, which the
    generator does without): the hot-loaded LoRA path exactly as DiffSynth's source has it."""
    layers = reference.import_diffsynth(root, "core.vram.layers")
    path = os.path.join(root, "diffsynth", "diffusion", "base_pipeline.py")
    tree = ast.parse(open(path).read(), path)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BasePipeline")
    defs = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in names]
    scope = {"torch": torch, "Union": Union, "ModelConfig": object, "load_state_dict": None,
             "AutoWrappedLinear": layers.AutoWrappedLinear, "LoRAHotLoadMixin": layers.LoRAHotLoadMixin,
             "enable_vram_management": layers.enable_vram_management}
    exec(compile(ast.Module(body=defs, type_ignores=[]), path, "exec"), scope)
    return [scope[n] for n in names]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data"))
    args = ap.parse_args()
    root = reference.diffsynth_dir(args.diffsynth)
    dit, model_fn, fm, _vae, tokens, encode = make_t2v.load_tiny(root, args.engine)
    general = reference.import_diffsynth(root, "utils.lora.general")
    dit_sd = dit.state_dict()
    layers = sum(1 for k in dit_sd if k.endswith(".self_attn.q.weight"))
    gen = torch.Generator("cpu").manual_seed(2026)

    m1 = ["text_embedding.0"] + [f"blocks.{i}.{a}.{p}" for i in range(layers) for a, p in
                                 [("self_attn", "q"), ("self_attn", "k"), ("self_attn", "v"), ("self_attn", "o"),
                                  ("cross_attn", "q"), ("cross_attn", "o"), ("ffn", "0"), ("ffn", "2")]]
    m2 = ["head.head"] + [f"blocks.{i}.{a}" for i in range(layers) for a in ("cross_attn.k", "cross_attn.v", "self_attn.q")]
    rank1, alpha1 = 4, 2.0
    p1, p2 = make_pairs(dit_sd, m1, rank1, gen), make_pairs(dit_sd, m2, 2, gen)

    files = {}
    kohya = {}
    for m, (up, down) in p1.items():
        kohya[f"diffusion_model.{m}.lora_up.weight"] = up
        kohya[f"diffusion_model.{m}.lora_down.weight"] = down
        kohya[f"diffusion_model.{m}.alpha"] = torch.tensor(alpha1)
    files["lora1_kohya_comfy"] = kohya
    # lora_A as DiffSynth's convert_state_dict makes it: weight_down * (alpha / rank), a tensor op.
    eff = {m: (up, down * (torch.tensor(alpha1) / down.shape[0])) for m, (up, down) in p1.items()}
    files["lora1_peft"] = {k: v for m, (up, down) in eff.items()
                           for k, v in [(f"{m}.lora_A.weight", down), (f"{m}.lora_B.weight", up)]}
    files["lora1_peft_default"] = {k: v for m, (up, down) in eff.items()
                                   for k, v in [(f"{m}.lora_A.default.weight", down), (f"{m}.lora_B.default.weight", up)]}
    files["lora1_diffusers"] = {k: v for m, (up, down) in eff.items() for k, v in
                                [(f"transformer.{diffusers_name(m)}.lora_A.weight", down),
                                 (f"transformer.{diffusers_name(m)}.lora_B.weight", up)]}
    files["lora1_kohya_flat"] = {k: v for m, (up, down) in p1.items() for k, v in
                                 [("lora_unet_" + m.replace(".", "_") + ".lora_down.weight", down),
                                  ("lora_unet_" + m.replace(".", "_") + ".lora_up.weight", up),
                                  ("lora_unet_" + m.replace(".", "_") + ".alpha", torch.tensor(alpha1))]}
    diff = {f"diffusion_model.{m}.diff": torch.mm(up, down) for m, (up, down) in eff.items()
            if m in ("blocks.0.self_attn.q", "blocks.0.cross_attn.o")}  # two weights keep the file small
    diff["diffusion_model.blocks.0.self_attn.q.diff_b"] = torch.randn(dit_sd["blocks.0.self_attn.q.bias"].shape, generator=gen) * 0.05
    diff["diffusion_model.blocks.1.norm3.diff"] = torch.randn(dit_sd["blocks.1.norm3.weight"].shape, generator=gen) * 0.05
    files["lora1_diff"] = diff
    files["lora2_peft"] = {k: v for m, (up, down) in p2.items()
                           for k, v in [(f"{m}.lora_A.weight", down), (f"{m}.lora_B.weight", up)]}
    lora_dir = os.path.join(args.out, "lora")
    os.makedirs(lora_dir, exist_ok=True)
    for name, sd in files.items():
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(lora_dir, name + ".safetensors"))

    def fused(lora_files):
        """DiffSynth's load_lora (fused) of each file at its scale, in order, on a copy of the DiT."""
        d = copy.deepcopy(dit)
        for path, scale in lora_files:
            lora = {k: v.float() for k, v in load_file(path).items()}  # load_state_dict(torch_dtype=float32)
            loader = general.GeneralLoRALoader(torch_dtype=torch.float32, device="cpu")
            loader.fuse_lora_to_base_model(d, loader.convert_state_dict(lora), alpha=scale)
        return d

    def with_diff(scale):
        d = copy.deepcopy(dit)
        sd = d.state_dict()
        for k, v in files["lora1_diff"].items():
            name = k[len("diffusion_model."):]
            target = name[:-len(".diff_b")] + ".bias" if name.endswith(".diff_b") else name[:-len(".diff")] + ".weight"
            sd[target] = sd[target] + scale * v
        d.load_state_dict(sd)
        return d

    lora2 = (os.path.join(lora_dir, "lora2_peft.safetensors"), SCALES[1])
    models = {
        "base": dit,
        "fused": fused([(os.path.join(lora_dir, "lora1_kohya_comfy.safetensors"), SCALES[0]), lora2]),
    }
    d = with_diff(SCALES[0])
    loader = general.GeneralLoRALoader(torch_dtype=torch.float32, device="cpu")
    loader.fuse_lora_to_base_model(d, loader.convert_state_dict({k: v.float() for k, v in load_file(lora2[0]).items()}),
                                   alpha=SCALES[1])
    models["diff"] = d

    load_lora, enable_lora_hot_loading = pipeline_methods(root, "load_lora", "enable_lora_hot_loading")
    # The two methods read only these attributes of the pipeline.
    host = types.SimpleNamespace(torch_dtype=torch.float32, device="cpu", lora_loader=general.GeneralLoRALoader)

    def hot(lora_files):
        """DiffSynth's hot-loaded LoRAs: the DiT's Linears wrapped, each file's terms added at forward."""
        d = enable_lora_hot_loading(host, copy.deepcopy(dit))
        for path, scale in lora_files:
            lora = {k: v.float() for k, v in load_file(path).items()}  # load_state_dict(torch_dtype=float32)
            load_lora(host, d, state_dict=lora, alpha=scale, hotload=True, verbose=0)
        return d

    lora_set = [(os.path.join(lora_dir, "lora1_kohya_comfy.safetensors"), SCALES[0]), lora2]
    models["hot"] = hot(lora_set)

    out = {}
    meta = {"diffsynth_commit": "fed7b18f", "torch": torch.__version__,
            "case": json.dumps({"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": str(SEED), "height": HEIGHT,
                                "width": WIDTH, "num_frames": FRAMES, "num_inference_steps": STEPS, "cfg_scale": CFG,
                                "sigma_shift": SHIFT, "scales": list(SCALES),
                                "distilled": {"num_inference_steps": DISTILLED_STEPS, "cfg_scale": 1.0}})}
    with torch.no_grad():
        (ids, mask), (nids, nmask), posi, nega, _sched, noise = make_t2v.prepare(
            fm, tokens, encode, PROMPT, NEGATIVE, SEED, HEIGHT, WIDTH, FRAMES, STEPS, SHIFT)
        out["prompt_ids"], out["prompt_mask"], out["negative_ids"], out["negative_mask"] = ids, mask, nids, nmask
        for name, model in models.items():
            sched = fm.FlowMatchScheduler("Wan")
            sched.set_timesteps(STEPS, denoising_strength=1.0, shift=SHIFT)
            latents = make_t2v.denoise(model, model_fn, sched, noise, posi, nega, CFG)
            out[name + ".latents"] = latents[0].contiguous()
            print(f"{name}: |latents| {latents.norm():.6f}")
        for name, model in (("distilled", models["fused"]), ("distilled_hot", models["hot"]), ("distilled_base", dit)):
            sched = fm.FlowMatchScheduler("Wan")
            sched.set_timesteps(DISTILLED_STEPS, denoising_strength=1.0, shift=SHIFT)
            latents = make_t2v.denoise(model, model_fn, sched, noise, posi, nega, 1.0)
            out[name + ".latents"] = latents[0].contiguous()
            print(f"{name}: |latents| {latents.norm():.6f}")
    rel = float((out["fused.latents"] - out["base.latents"]).norm() / out["base.latents"].norm())
    print(f"LoRAs move the latents by {rel:.4f} (relative L2)")
    save_file(out, os.path.join(args.out, "lora.safetensors"), metadata=meta)
    print(f"wrote {os.path.join(args.out, 'lora.safetensors')} and {len(files)} LoRA files in {lora_dir}")


if __name__ == "__main__":
    main()

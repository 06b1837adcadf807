"""Golden whole generations: DiffSynth-Studio's text-to-video loop on the tiny model.

The loop is WanVideoPipeline.__call__'s text-to-video path (diffsynth/pipelines/wan_video.py at
commit fed7b18f), step for step, on DiffSynth's own parts:
  tokens   ftfy + html.unescape + whitespace cleaning, then the tokenizer.json pipeline with
           truncation/padding to text_len (what T5TokenizerFast does; make_tokens.py)
  context  WanTextEncoder(ids, mask), zeroed past the prompt's length (encode_prompt)
  noise    torch.Generator("cpu").manual_seed(seed); torch.randn([1, 16, f, h, w]) (generate_noise)
  sampler  FlowMatchScheduler("Wan").set_timesteps(steps, denoising_strength=1, shift=sigma_shift)
  denoise  model_fn_wan_video(dit, latents, timestep=t.unsqueeze(0), context) for the prompt and,
           when cfg_scale != 1, the negative prompt: nega + cfg_scale * (posi - nega); scheduler.step
  decode   WanVideoVAE.decode(latents, tiled=..., tile_size, tile_stride)
wan_video.py cannot be imported without every other Wan variant's dependencies, so the loop is
written out here and model_fn_wan_video is lifted from the file (make_dit.load_model_fn).
Float32 on the CPU (torch_dtype=float32).

The committed data was made with the PyTorch 2.13 CPU wheel that the machine image ships
(installed offline from /opt/wheels), where DiffSynth's scaled_dot_product_attention is native:
  PYTHONPATH=<torch 2.13>:.cache/pydeps:test/golden python3 test/golden/make_t2v.py --diffsynth DIR
(.cache/pydeps needs safetensors, einops, ftfy, regex, tqdm, tokenizers from the local index.)
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

import make_dit
import make_t5
import make_tokens
import reference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CASES = [
    # name, prompt, negative prompt, seed, height, width, frames, steps, cfg, shift, tiled (size, stride)
    ("cfg_nonsquare", "A cat walks on the street at night.", "", 42, 64, 96, 5, 4, 5.0, 5.0, None),
    ("cfg1_single_frame", "a red car on the beach, cinematic", "blurry", 2**32 + 5, 64, 64, 1, 3, 1.0, 3.0, None),
    ("big_seed_chinese", "一只猫在街上 walking in the rain", "low quality, static picture", 2**63 + 3, 48, 80, 9, 3, 4.5, 5.0, None),
    ("tiled_decode", "a bird flying over the sea", "dark", 7, 96, 128, 1, 2, 5.0, 5.0, ((8, 8), (4, 4))),
]


def load_tiny(root, engine):
    """DiffSynth's modules on the tiny model (make-tiny, official layout, seed 0), float32 on the CPU:
    (dit, model_fn, flow_match module, vae, tokens(prompt) -> (ids, mask), encode(ids, mask) -> context)."""
    dit_mod = reference.import_diffsynth(root, "models.wan_video_dit")
    te_mod = reference.import_diffsynth(root, "models.wan_video_text_encoder")
    vae_mod = reference.import_diffsynth(root, "models.wan_video_vae")
    fm = reference.import_diffsynth(root, "diffusion.flow_match")
    model_fn = make_dit.load_model_fn(root, dit_mod, reference.import_diffsynth(root, "core.gradient"))

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([engine, "make-tiny", tmp], check=True, stdout=subprocess.DEVNULL)
        dit_sd, t5_sd, vae_sd = reference.load_official(tmp)
        config = json.load(open(os.path.join(tmp, "config.json")))
        tok = Tokenizer.from_file(os.path.join(tmp, "google", "umt5-xxl", "tokenizer.json"))
    text_len = config["text_len"]
    tok.enable_truncation(max_length=text_len)
    tok.enable_padding(length=text_len, pad_id=0, pad_token="<pad>")

    dim, text_dim = dit_sd["text_embedding.0.weight"].shape
    dit = dit_mod.WanModel(
        dim=dim, in_dim=config["in_dim"], ffn_dim=config["ffn_dim"], out_dim=config["out_dim"], text_dim=text_dim,
        freq_dim=config["freq_dim"], eps=config["eps"], patch_size=tuple(dit_sd["patch_embedding.weight"].shape[2:]),
        num_heads=config["num_heads"], num_layers=config["num_layers"], has_image_input=False)
    dit.load_state_dict({k: v.float() for k, v in dit_sd.items()}, strict=True)
    dit = dit.float().eval().requires_grad_(False)
    t5 = te_mod.WanTextEncoder(**make_t5.arch_from_weights(t5_sd))
    t5.load_state_dict(t5_sd, strict=True)
    t5 = t5.float().eval().requires_grad_(False)
    vae = vae_mod.WanVideoVAE(z_dim=vae_sd["conv2.weight"].shape[0])
    vae.model = vae_mod.VideoVAE_(dim=vae_sd["encoder.conv1.weight"].shape[0], z_dim=16).eval().requires_grad_(False)
    vae.load_state_dict({k: v.float() for k, v in vae_mod.WanVideoVAE.state_dict_converter().from_civitai(vae_sd).items()}, strict=True)
    vae = vae.float().eval()

    def tokens(prompt):
        enc = tok.encode(make_tokens.clean(prompt), add_special_tokens=True)
        return torch.tensor(enc.ids, dtype=torch.long), torch.tensor(enc.attention_mask, dtype=torch.long)

    def encode(ids, mask):
        return make_t5.encode_prompt_body(t5, ids[None], mask[None])  # [1, text_len, dim]

    return dit, model_fn, fm, vae, tokens, encode


def prepare(fm, tokens, encode, prompt, negative, seed, height, width, frames, steps, shift):
    """What WanVideoPipeline sets up before denoising: the prompts' ids, masks and embeddings, the
    scheduler (denoising strength 1) and the seeded noise [1, 16, f, h, w]."""
    ids, mask = tokens(prompt)
    nids, nmask = tokens(negative)
    posi, nega = encode(ids, mask), encode(nids, nmask)
    sched = fm.FlowMatchScheduler("Wan")
    sched.set_timesteps(steps, denoising_strength=1.0, shift=shift)
    g = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn((1, 16, (frames - 1) // 4 + 1, height // 8, width // 8), generator=g, dtype=torch.float32)
    return (ids, mask), (nids, nmask), posi, nega, sched, noise


def denoise(dit, model_fn, sched, latents, posi, nega, cfg):
    """WanVideoPipeline's loop: model_fn for the prompt (and the negative prompt when cfg != 1),
    nega + cfg * (posi - nega), scheduler.step; the timestep a [1] float32 tensor."""
    for i, t in enumerate(sched.timesteps):
        timestep = t.unsqueeze(0).to(dtype=torch.float32)
        v = model_fn(dit, latents=latents, timestep=timestep, context=posi)
        if cfg != 1.0:
            vn = model_fn(dit, latents=latents, timestep=timestep, context=nega)
            v = vn + cfg * (v - vn)
        latents = sched.step(v, sched.timesteps[i], latents)
    return latents


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", "t2v.safetensors"))
    args = ap.parse_args()
    dit, model_fn, fm, vae, tokens, encode = load_tiny(reference.diffsynth_dir(args.diffsynth), args.engine)

    out, meta = {}, {"diffsynth_commit": "fed7b18f", "torch": torch.__version__}
    with torch.no_grad():
        for name, prompt, negative, seed, height, width, frames, steps, cfg, shift, tiles in CASES:
            (ids, mask), (nids, nmask), posi, nega, sched, noise = prepare(
                fm, tokens, encode, prompt, negative, seed, height, width, frames, steps, shift)
            latents = denoise(dit, model_fn, sched, noise, posi, nega, cfg)
            kw = {"tiled": tiles is not None}
            if tiles:
                kw.update(tile_size=tiles[0], tile_stride=tiles[1])
            video = vae.decode(latents, device="cpu", **kw)[0]
            p = name + "."
            out[p + "prompt_ids"], out[p + "prompt_mask"] = ids, mask
            out[p + "negative_ids"], out[p + "negative_mask"] = nids, nmask
            out[p + "noise"] = noise[0].contiguous()
            out[p + "context"] = posi[0].contiguous()
            out[p + "latents"] = latents[0].contiguous()
            out[p + "video"] = video.contiguous()
            meta[name] = json.dumps({"prompt": prompt, "negative_prompt": negative, "seed": str(seed), "height": height,
                                     "width": width, "num_frames": frames, "num_inference_steps": steps, "cfg_scale": cfg,
                                     "sigma_shift": shift, "tiled": tiles is not None,
                                     "tile_size": tiles[0] if tiles else None, "tile_stride": tiles[1] if tiles else None})
            print(f"{name}: video {list(video.shape)}, prompt tokens {int(mask.sum())}, |latents| {latents.norm():.4f}")
    meta["cases"] = json.dumps([c[0] for c in CASES])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()

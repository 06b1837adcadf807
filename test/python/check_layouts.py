"""Independent check of wanlab's tiny checkpoints with PyTorch and the safetensors package.

usage: check_layouts.py ROOT   (ROOT holds official/, diffusers/ and comfyui/ made with one seed)

The official .pth files must load with torch.load(weights_only=True) (no code runs) and the
safetensors files with the `safetensors` package; every layout must hold the same values under
its own key names. The key renamings here are written from diffusers' convert_wan_to_diffusers.py
rules and transformers' UMT5 module names, independently of wanlab's C++ tables.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

root = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def load_sharded(d, index_name):
    with open(os.path.join(d, index_name)) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = load_file(os.path.join(d, shard))
        for k in part:
            check_assign = index["weight_map"].get(k) == shard
            if not check_assign:
                failures.append(f"{k} not assigned to {shard} in {index_name}")
        out.update(part)
    return out


def same(a, b):
    return a.shape == b.shape and torch.equal(a.float(), b.float())


# --- official --------------------------------------------------------------------------------
off = os.path.join(root, "official")
t5 = torch.load(os.path.join(off, "models_t5_umt5-xxl-enc-bf16.pth"), map_location="cpu", weights_only=True)
vae = torch.load(os.path.join(off, "Wan2.1_VAE.pth"), map_location="cpu", weights_only=True)
dit = load_file(os.path.join(off, "diffusion_pytorch_model.safetensors"))
check(all(v.dtype == torch.bfloat16 for v in t5.values()), "official T5 .pth loads with weights_only=True, all bf16")
check(all(v.dtype == torch.float32 for v in vae.values()) and len(vae) == 194, "official VAE .pth loads, 194 f32 tensors")
check(all(v.dtype == torch.float32 for v in dit.values()), "official DiT safetensors loads, all f32")
with open(os.path.join(off, "config.json")) as f:
    cfg = json.load(f)
check(dit["patch_embedding.weight"].shape[0] == cfg["dim"], "config.json dim matches patch_embedding")
check(len(dit) == 15 + 27 * cfg["num_layers"], "DiT has 15 + 27 x num_layers tensors")
check(dit["blocks.0.ffn.0.weight"].shape[0] == cfg["ffn_dim"], "config.json ffn_dim matches blocks.0.ffn.0")
check("token_embedding.weight" in t5 and "blocks.0.pos_embedding.embedding.weight" in t5, "T5 has umt5 per-layer position tables")
tok = json.load(open(os.path.join(off, "google", "umt5-xxl", "tokenizer.json")))
check(tok["model"]["type"] == "Unigram" and tok["model"]["unk_id"] == 2, "tokenizer.json is a Unigram model with unk_id 2")
check(len(tok["model"]["vocab"]) + 8 <= t5["token_embedding.weight"].shape[0], "tokenizer fits the T5 embedding")

# --- comfyui ---------------------------------------------------------------------------------
com = os.path.join(root, "comfyui")
cdit_file = [f for f in os.listdir(os.path.join(com, "diffusion_models")) if f.endswith(".safetensors")][0]
cdit = load_file(os.path.join(com, "diffusion_models", cdit_file))
check(all(k.startswith("model.diffusion_model.") for k in cdit), "ComfyUI DiT keys carry model.diffusion_model.")
check(all(v.dtype == torch.bfloat16 for v in cdit.values()), "ComfyUI DiT is bf16")
check(all(same(dit[k[len("model.diffusion_model."):]], v) for k, v in cdit.items()) and len(cdit) == len(dit),
      "ComfyUI DiT values equal the official DiT")

HF_T5 = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}


def t5_hf_name(k):
    if k == "token_embedding.weight":
        return "shared.weight"
    if k == "norm.weight":
        return "encoder.final_layer_norm.weight"
    _, i, rest = k.split(".", 2)
    return f"encoder.block.{i}.{HF_T5[rest]}"


ct5 = load_file(os.path.join(com, "text_encoders", "umt5_xxl_fp16.safetensors"))
check(all(v.dtype == torch.float16 for v in ct5.values()), "ComfyUI UMT5 is fp16")
check(len(ct5) == len(t5) and all(same(v, ct5[t5_hf_name(k)]) for k, v in t5.items()),
      "ComfyUI UMT5 (Hugging Face names) equals the official T5")
cvae = load_file(os.path.join(com, "vae", "wan_2.1_vae.safetensors"))
check(len(cvae) == len(vae) and all(same(v, cvae[k]) for k, v in vae.items()), "ComfyUI VAE equals the official VAE")

# --- diffusers -------------------------------------------------------------------------------
dif = os.path.join(root, "diffusers")
# diffusers' convert_wan_to_diffusers.py TRANSFORMER_KEYS_RENAME_DICT, applied in order with str.replace
DIT_RULES = [
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"),
    ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"),
    ("norm3", "norm2"),
    ("norm__placeholder", "norm3"),
    ("self_attn.q", "attn1.to_q"),
    ("self_attn.k", "attn1.to_k"),
    ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"),
    ("self_attn.norm_q", "attn1.norm_q"),
    ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"),
    ("cross_attn.k", "attn2.to_k"),
    ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"),
    ("cross_attn.norm_q", "attn2.norm_q"),
    ("cross_attn.norm_k", "attn2.norm_k"),
]


def dit_diffusers_name(k):
    for a, b in DIT_RULES:
        k = k.replace(a, b)
    return k


tdir = os.path.join(dif, "transformer")
ddit = (load_sharded(tdir, "diffusion_pytorch_model.safetensors.index.json")
        if os.path.exists(os.path.join(tdir, "diffusion_pytorch_model.safetensors.index.json"))
        else load_file(os.path.join(tdir, "diffusion_pytorch_model.safetensors")))
check(len(ddit) == len(dit) and all(same(v, ddit[dit_diffusers_name(k)]) for k, v in dit.items()),
      "diffusers transformer (renamed keys) equals the official DiT")
tcfg = json.load(open(os.path.join(tdir, "config.json")))
check(tcfg["num_attention_heads"] * tcfg["attention_head_dim"] == cfg["dim"], "diffusers transformer config agrees")
dt5 = load_sharded(os.path.join(dif, "text_encoder"), "model.safetensors.index.json")
check(len(dt5) == len(t5) and all(same(v, dt5[t5_hf_name(k)]) for k, v in t5.items()),
      "diffusers text_encoder (sharded, Hugging Face names) equals the official T5")
dvae = load_file(os.path.join(dif, "vae", "diffusion_pytorch_model.safetensors"))
check(len(dvae) == 194 and sorted(v.numel() for v in dvae.values()) == sorted(v.numel() for v in vae.values()),
      "diffusers VAE has the official VAE's tensors")
check("quant_conv.weight" in dvae and same(dvae["quant_conv.weight"], vae["conv1.weight"]), "diffusers quant_conv is conv1")
check(same(dvae["decoder.up_blocks.1.upsamplers.0.time_conv.weight"], vae["decoder.upsamples.7.time_conv.weight"]),
      "diffusers up_blocks.1.upsamplers.0 is decoder.upsamples.7")

print(f"check_layouts: {len(failures)} failed")
sys.exit(1 if failures else 0)

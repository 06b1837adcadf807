"""Shared plumbing for the golden-data generators: DiffSynth-Studio's own modules under PyTorch.

The DiffSynth source is fetched when generating (never committed) and named by --diffsynth or
$DIFFSYNTH_DIR (a source tree of modelscope/DiffSynth-Studio; the data in test/golden/data was
made at commit fed7b18f). Modules are imported one by one, without running diffsynth/__init__.py
(which pulls in every pipeline and its dependencies).

PyTorch 1.13 (Debian's python3-torch) lacks torch.nn.functional.scaled_dot_product_attention,
which DiffSynth calls; `install_sdpa_shim` adds the textbook definition (softmax(q k^T * scale
+ mask) v, computed in float32 and cast back), which is what the math backend of PyTorch 2.x does.
The `transformers` import in wan_video_text_encoder.py is only for its tokenizer wrapper; a
stub module satisfies the import, and tokenization is done with the `tokenizers` library on the
same tokenizer.json (what T5TokenizerFast runs underneath).
"""
import argparse
import importlib
import math
import os
import sys
import types

import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def diffsynth_dir(argv_value=None):
    d = argv_value or os.environ.get("DIFFSYNTH_DIR")
    if not d or not os.path.isdir(os.path.join(d, "diffsynth")):
        sys.exit("golden: give the DiffSynth-Studio source tree with --diffsynth DIR or DIFFSYNTH_DIR")
    return d


def golden_args(out_name):
    """The generators' command line: --diffsynth (the source tree, else $DIFFSYNTH_DIR), --engine (the
    wanlab-engine that writes the tiny model) and --out (default test/golden/data/<out_name>)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffsynth")
    ap.add_argument("--engine", default=os.path.join(ROOT, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "golden", "data", out_name))
    return ap.parse_args()


def install_sdpa_shim():
    if hasattr(F, "scaled_dot_product_attention"):
        return

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        assert dropout_p == 0.0 and not is_causal, "shim: inference only"
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        s = torch.matmul(q.float(), k.float().transpose(-2, -1)) * scale
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                s = s.masked_fill(~attn_mask, float("-inf"))
            else:
                s = s + attn_mask.float()
        return torch.matmul(torch.softmax(s, dim=-1), v.float()).to(q.dtype)

    F.scaled_dot_product_attention = sdpa


def _stub_package(name, path):
    m = types.ModuleType(name)
    m.__path__ = [path]
    sys.modules[name] = m
    return m


def import_diffsynth(root, module):
    """Imports diffsynth.<module> (e.g. 'models.wan_video_dit') without package __init__ files."""
    install_sdpa_shim()
    if "transformers" not in sys.modules:
        t = types.ModuleType("transformers")

        class AutoTokenizer:  # only referenced by the prompter's tokenizer wrapper
            @staticmethod
            def from_pretrained(*a, **k):
                raise RuntimeError("golden: tokenize with the tokenizers library instead")

        t.AutoTokenizer = AutoTokenizer
        sys.modules["transformers"] = t
    pkg = os.path.join(root, "diffsynth")
    for sub in ["", "models", "core", "diffusion", "pipelines", "utils"]:
        name = "diffsynth" + ("." + sub if sub else "")
        if name not in sys.modules:
            _stub_package(name, os.path.join(pkg, sub) if sub else pkg)
    return importlib.import_module("diffsynth." + module)


def load_official(model_dir):
    """The tiny model's three components as state dicts (official names), as DiffSynth loads them."""
    from safetensors.torch import load_file

    dit = load_file(os.path.join(model_dir, "diffusion_pytorch_model.safetensors"))
    t5 = torch.load(os.path.join(model_dir, "models_t5_umt5-xxl-enc-bf16.pth"), map_location="cpu", weights_only=True)
    vae = torch.load(os.path.join(model_dir, "Wan2.1_VAE.pth"), map_location="cpu", weights_only=True)
    return dit, t5, vae

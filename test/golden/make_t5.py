"""Golden data for the UMT5 text encoder: DiffSynth-Studio's own WanTextEncoder on the tiny model.

Writes test/golden/data/t5.safetensors, which native/tests/umt5_test.cpp compares against.
Made with DiffSynth-Studio at commit fed7b18f (modelscope/DiffSynth-Studio), PyTorch 1.13 (CPU).

What it does:
  1. writes the tiny model with `wanlab-engine make-tiny DIR` (official layout, seed 0: the C++
     test builds the same bytes) and loads its models_t5_umt5-xxl-enc-bf16.pth (bf16, official
     key names, which are WanTextEncoder's own state-dict names: DiffSynth registers no converter);
  2. builds diffsynth.models.wan_video_text_encoder.WanTextEncoder with the architecture read
     from the weights' shapes, loads the state dict (strict) into its float32 parameters, eval();
  3. runs it in float32 on token batches shaped like the tokenizer's output (ids padded with 0,
     the last real token </s> = 1, mask 1 for real tokens and 0 for padding) and applies the body
     of DiffSynth's WanVideoUnit_PromptEmbedder.encode_prompt (prompt_emb[:, seq_len:] = 0).

DiffSynth's encode_prompt always gets one prompt; its zeroing loop, run on a batch, would zero every
row past each row's length (so past the shortest). The zeroed output here is made row by row, as the
pipeline runs it; the raw output is from one batched forward.

Cases (keys caseN.ids [B, L] int64, caseN.mask [B, L] int64, caseN.out [B, L, dim] float32 = raw
encoder output, caseN.prompt_emb = out zeroed at and past each row's length). Most use a short
text_len to keep the committed file small; one uses the pipeline's 512 with no padding, and one
reaches past the relative-position max_dist of 128 with padding.

Usage (repo root):
  PYTHONPATH=.cache/pydeps:test/golden /usr/bin/python3 test/golden/make_t5.py \
      --diffsynth /work/ref/DiffSynth-Studio [--engine native/build/wanlab-engine] [--out FILE]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

import reference

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# (text_len, prompt lengths per row, </s> included). Lengths equal to text_len mean no padding.
CASES = [
    (64, [1]),        # the empty prompt: only </s>
    (64, [20]),
    (64, [9, 33]),    # a batch of two prompts of different lengths
    (64, [64]),       # exactly fills the text length
    (160, [150]),     # distances past max_dist=128 (the last bucket), with padding
    (512, [512]),     # the pipeline's text_len, no padding
]


def arch_from_weights(sd):
    """WanTextEncoder's constructor arguments, read from the tensor shapes."""
    vocab, dim = sd["token_embedding.weight"].shape
    num_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    num_buckets, num_heads = sd["blocks.0.pos_embedding.embedding.weight"].shape
    return dict(
        vocab=vocab,
        dim=dim,
        dim_attn=sd["blocks.0.attn.q.weight"].shape[0],
        dim_ffn=sd["blocks.0.ffn.fc1.weight"].shape[0],
        num_heads=num_heads,
        num_layers=num_layers,
        num_buckets=num_buckets,
        shared_pos=False,  # umt5: each block has its own pos_embedding (present in the weights)
    )


def make_batch(text_len, lengths, vocab, gen):
    """ids/mask as the tokenizer pads them: real tokens, </s>=1 last, then pad id 0, mask 1/0."""
    ids = torch.zeros(len(lengths), text_len, dtype=torch.long)
    mask = torch.zeros(len(lengths), text_len, dtype=torch.long)
    for b, n in enumerate(lengths):
        # ids 0 (pad), 1 (</s>) and 2 (unk) never appear inside a prompt
        ids[b, : n - 1] = torch.randint(3, vocab, (n - 1,), generator=gen)
        ids[b, n - 1] = 1
        mask[b, :n] = 1
    return ids, mask


def encode_prompt_body(text_encoder, ids, mask):
    """The body of DiffSynth's WanVideoUnit_PromptEmbedder.encode_prompt after tokenization."""
    seq_lens = mask.gt(0).sum(dim=1).long()
    prompt_emb = text_encoder(ids, mask)
    for i, v in enumerate(seq_lens):
        prompt_emb[:, v:] = 0
    return prompt_emb


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffsynth", help="DiffSynth-Studio source tree (or $DIFFSYNTH_DIR)")
    ap.add_argument("--engine", default=os.path.join(REPO, "native", "build", "wanlab-engine"))
    ap.add_argument("--out", default=os.path.join(REPO, "test", "golden", "data", "t5.safetensors"))
    args = ap.parse_args()
    root = reference.diffsynth_dir(args.diffsynth)
    if not os.access(args.engine, os.X_OK):
        sys.exit(f"golden: {args.engine} is not built (cmake/ninja in native/, or give --engine)")
    te = reference.import_diffsynth(root, "models.wan_video_text_encoder")

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "tiny")
        subprocess.run([args.engine, "make-tiny", model_dir, "--layout", "official", "--seed", "0"], check=True)
        sd = torch.load(os.path.join(model_dir, "models_t5_umt5-xxl-enc-bf16.pth"), map_location="cpu",
                        weights_only=True)
    arch = arch_from_weights(sd)
    print("arch:", arch)
    model = te.WanTextEncoder(**arch)
    model.load_state_dict(sd, strict=True)  # bf16 values copied into the float32 parameters
    model = model.float().eval()            # eval: the encoder has dropout layers

    gen = torch.Generator().manual_seed(1234)
    out = {}
    with torch.no_grad():
        for i, (text_len, lengths) in enumerate(CASES):
            ids, mask = make_batch(text_len, lengths, arch["vocab"], gen)
            raw = model(ids, mask)
            zeroed = torch.cat([encode_prompt_body(model, ids[b : b + 1], mask[b : b + 1])
                                for b in range(len(lengths))])
            assert raw.dtype == torch.float32 and raw.shape == (len(lengths), text_len, arch["dim"])
            out[f"case{i}.ids"] = ids.contiguous()
            out[f"case{i}.mask"] = mask.contiguous()
            out[f"case{i}.out"] = raw.contiguous()
            out[f"case{i}.prompt_emb"] = zeroed.contiguous()
            print(f"case{i}: text_len {text_len}, lengths {lengths}, |out| {raw.norm():.4f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(out, args.out, metadata={"generator": "test/golden/make_t5.py", "diffsynth": "fed7b18f",
                                       "torch": torch.__version__, "cases": str(len(CASES))})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()

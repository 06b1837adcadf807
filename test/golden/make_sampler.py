"""Golden data for the noise and the flow-match schedule, from PyTorch and DiffSynth-Studio.

usage: PYTHONPATH=<torch>:.cache/pydeps:test/golden python3 test/golden/make_sampler.py --diffsynth DIR

- noise: torch.Generator("cpu").manual_seed(seed); torch.randn(shape) in float32 — what
  DiffSynth's BasePipeline.generate_noise does with rand_device="cpu" — for seeds across the
  whole uint64 range and shapes on both sides of ATen's 16-element vectorised path.
- schedule: FlowMatchScheduler("Wan").set_timesteps(steps, denoising_strength, shift) sigmas and
  timesteps, and one scheduler.step per schedule on fixed tensors.
The committed data was made with the PyTorch 2.13 CPU wheel that the machine image ships
(installed offline from /opt/wheels), so the engine (built on Debian's libtorch 1.13) is checked
against a different PyTorch than its own. DiffSynth-Studio at commit fed7b18f.
"""
import argparse
import os

import torch
from safetensors.torch import save_file

import reference

ap = argparse.ArgumentParser()
ap.add_argument("--diffsynth")
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data", "sampler.safetensors"))
args = ap.parse_args()
fm = reference.import_diffsynth(reference.diffsynth_dir(args.diffsynth), "diffusion.flow_match")

out = {}
seeds = [0, 1, 42, 2**31 - 1, 2**32 + 7, 2**53 + 1, 2**63 + 12345, 2**64 - 1]
shapes = {"s15": (3, 5), "s16": (1, 16, 1, 1, 1), "s17": (17,), "s1920": (1, 16, 2, 6, 10), "s64": (1, 16, 1, 2, 2)}
for i, seed in enumerate(seeds):
    for name, shape in shapes.items():
        g = torch.Generator("cpu").manual_seed(seed)
        out[f"noise.{i}.{name}"] = torch.randn(shape, generator=g, dtype=torch.float32)
# seeds as int64 bit patterns (safetensors has no uint64): reinterpret on load
out["noise.seeds"] = torch.tensor([s if s < 2**63 else s - 2**64 for s in seeds], dtype=torch.int64)

cases = [(50, 1.0, 5.0), (1, 1.0, 5.0), (7, 1.0, 3.0), (30, 0.7, 5.0), (10, 1.0, 1.0)]
gen = torch.Generator("cpu").manual_seed(7)
x = torch.randn((16, 2, 3, 4), generator=gen)
v = torch.randn((16, 2, 3, 4), generator=gen)
out["step.x"], out["step.v"] = x, v
for i, (steps, strength, shift) in enumerate(cases):
    sch = fm.FlowMatchScheduler("Wan")
    sch.set_timesteps(steps, denoising_strength=strength, shift=shift)
    out[f"schedule.{i}.params"] = torch.tensor([steps, strength, shift], dtype=torch.float64)
    out[f"schedule.{i}.sigmas"] = sch.sigmas.float().contiguous()
    out[f"schedule.{i}.timesteps"] = sch.timesteps.float().contiguous()
    # the first and the last step, as the pipeline calls them
    out[f"schedule.{i}.step_first"] = sch.step(v, sch.timesteps[0], x).contiguous()
    out[f"schedule.{i}.step_last"] = sch.step(v, sch.timesteps[-1], x).contiguous()
out["torch_version"] = torch.tensor([ord(c) for c in torch.__version__], dtype=torch.uint8)
os.makedirs(os.path.dirname(args.out), exist_ok=True)
save_file(out, args.out)
print(f"wrote {args.out} ({len(out)} tensors) with torch {torch.__version__}")

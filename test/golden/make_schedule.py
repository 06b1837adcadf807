"""Golden few-step and custom schedules.

1. DiffSynth-Studio's text-to-video loop on the tiny model (make_t2v.py's, at commit fed7b18f)
   with num_inference_steps 4 and cfg_scale 1, the way DiffSynth runs step-distilled Wan models.
2. LightX2V's WanStepDistillScheduler.set_timesteps_wan for a few denoising_step_list values and
   shifts, its three lines written out (lightx2v/models/schedulers/wan/step_distill/scheduler.py):
     sigmas = torch.linspace(1, 0, 1001)[:-1]
     sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
     sigmas[[1000 - t for t in denoising_step_list]], timesteps the same rows of sigmas * 1000

  PYTHONPATH=.cache/torch-2:.cache/pydeps:test/golden python3 test/golden/make_schedule.py --diffsynth DIR
"""
import json
import os

import torch
from safetensors.torch import save_file

import make_t2v
import reference

# name, prompt, seed, height, width, frames, steps, shift
CASES = [("four_step_cfg1", "a red fox running through snow", 11, 64, 64, 5, 4, 5.0)]

# denoising_step_list, shift
LISTS = [([1000, 750, 500, 250], 5.0), ([1000, 750, 500, 250], 1.0), ([999, 937, 833, 625, 41], 8.0), ([700, 10], 3.0)]


def lightx2v_schedule(step_list, shift):
    sigmas = torch.linspace(1.0, 0.0, 1001)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    timesteps = sigmas * 1000
    index = [1000 - x for x in step_list]
    return sigmas[index], timesteps[index]


def main():
    args = reference.golden_args("schedule.safetensors")
    dit, model_fn, fm, vae, tokens, encode = make_t2v.load_tiny(reference.diffsynth_dir(args.diffsynth), args.engine)

    out, meta = {}, {"diffsynth_commit": "fed7b18f", "torch": torch.__version__}
    with torch.no_grad():
        for name, prompt, seed, height, width, frames, steps, shift in CASES:
            (ids, mask), _, posi, nega, sched, noise = make_t2v.prepare(
                fm, tokens, encode, prompt, "", seed, height, width, frames, steps, shift)
            latents = make_t2v.denoise(dit, model_fn, sched, noise, posi, nega, 1.0)
            p = name + "."
            out[p + "prompt_ids"], out[p + "prompt_mask"] = ids, mask
            out[p + "sigmas"] = sched.sigmas.float().contiguous()
            out[p + "latents"] = latents[0].contiguous()
            meta[name] = json.dumps({"prompt": prompt, "seed": str(seed), "height": height, "width": width,
                                     "num_frames": frames, "num_inference_steps": steps, "cfg_scale": 1.0,
                                     "sigma_shift": shift, "tiled": False})
            print(f"{name}: sigmas {sched.sigmas.tolist()}, |latents| {latents.norm():.4f}")
    for i, (step_list, shift) in enumerate(LISTS):
        sigmas, timesteps = lightx2v_schedule(step_list, shift)
        out[f"lightx2v.{i}.list"] = torch.tensor(step_list, dtype=torch.float64)
        out[f"lightx2v.{i}.shift"] = torch.tensor([shift], dtype=torch.float64)
        out[f"lightx2v.{i}.sigmas"] = sigmas.contiguous()
        out[f"lightx2v.{i}.timesteps"] = timesteps.contiguous()
    meta["cases"] = json.dumps([c[0] for c in CASES])
    meta["lists"] = str(len(LISTS))
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()

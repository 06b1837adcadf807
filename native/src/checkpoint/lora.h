// LoRA files for the DiT as people have them, parsed into one form: per canonical weight (the
// names of checkpoint/arch.h dit_specs) a low-rank term up · down and/or a full difference.
//
// Accepted namings (safetensors only):
//   <module>.lora_A.weight / .lora_B.weight        PEFT / diffusers / DiffSynth (".lora_A.<adapter>.weight" too)
//   <module>.lora_down.weight / .lora_up.weight    kohya, with an optional <module>.alpha:
//                                                  down is scaled by alpha / rank, as DiffSynth's loader does
//   <module>.diff / <module>.diff_b                full-weight differences of the weight / bias (norms, modulation)
// <module> is an official Wan2.1 name ("blocks.3.self_attn.q"), optionally behind the prefixes
// "diffusion_model." / "model.diffusion_model." (ComfyUI) or "base_model.model." (PEFT), or a
// diffusers WanTransformer3DModel name behind "transformer." ("transformer.blocks.3.attn1.to_q"),
// mapped through the checkpoints' name table (checkpoint/key_names.h), or kohya's flattened
// "lora_unet_blocks_3_self_attn_q".
//
// Text-encoder (UMT5) keys ("lora_te_...", "text_encoder....", "blocks.3.attn.q", ...) are refused
// by name like any key that does not fit, or skipped with strict false: DiffSynth's Wan pipeline
// applies LoRAs to its DiT only (pipe.load_lora(pipe.dit, path)), so a DiT-only result would
// silently differ from what such a file means.
//
// Applied (models/lora_merge.h) as DiffSynth's fused load_lora does: W' = W + scale · up · down
// (+ scale · diff), LoRA after LoRA in the order given.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/arch.h"

namespace wan {

struct LoraTerm {
  std::string target;  // canonical tensor name, e.g. "blocks.3.self_attn.q.weight"
  std::string key;     // the file's key it came from (lora_B / lora_up / diff), for messages
  at::Tensor up, down;  // [out, r], [r, in] float32 (down times alpha / r), or undefined
  at::Tensor diff;      // float32 in the target's shape, or undefined
};

struct LoraFile {
  std::string path;
  // "<size>-<mtime ns>-<FNV-1a 64 of the safetensors header, hex>": a file rewritten in place
  // gets a new one (the header holds every tensor's byte range and dtype).
  std::string fingerprint;
  std::vector<LoraTerm> terms;       // sorted by target, at most one per target
  std::vector<std::string> skipped;  // strict false: "KEY: why" for each key left out
  int64_t rank = 0;                  // the largest rank of its low-rank terms (0: differences only)
  int64_t bytes = 0;                 // float32 bytes of its tensors
};

// The fingerprint of `path` (LoraFile::fingerprint); an error naming the file if it cannot be read.
std::string lora_fingerprint(const std::string& path);

// Reads `path` for a DiT of `arch`. Every problem is an error naming the file and the first
// offending key: a key that matches no weight of the model, a lora_B without its lora_A (or the
// reverse), ranks that disagree between the two, shapes that do not fit the model (a 14B LoRA
// on the 1.3B), an alpha that is not one finite number, NaN or Inf values, a file with no LoRA
// keys, a truncated or malformed file. With `strict` false the offending keys are skipped and
// listed in LoraFile::skipped instead (a file left with no terms is still an error).
// Parsed files are cached by (path, fingerprint, architecture, strict): a sweep over scales reads
// a file once; a file changed on disk is read again.
std::shared_ptr<const LoraFile> load_lora(const std::string& path, const DitArch& arch, bool strict = true);

}  // namespace wan

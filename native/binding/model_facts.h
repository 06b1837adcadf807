// Model constants and per-layout facts for TypeScript (src/parallel-model.ts, src/models.ts), read
// from the engine's own definitions instead of copied: the dimension presets, the VAE stride and
// patch, a DiT block's parameter counts, its weight-shard buffers and the Ulysses head groups, and
// the memory model's plan for a generation (what `wanlab inspect` and the engine's budget use).
#pragma once
#include <napi.h>

namespace wanjs {

// modelConstants() -> JSON string, synchronous:
//   {"presets": {"tiny" | "1.3B" | "14B": {"dit": {...}, "t5": {...}, "vae": {...}}},
//    "vaeStride": [4, 8, 8], "patch": [1, 2, 2]}
// presets: checkpoint/arch.h preset_arch (what make-tiny --dims and the random-weight benches
// build), each part as checkpoint/arch.h to_json writes it (dit: dim, ffn_dim, freq_dim, text_dim,
// in_dim, out_dim, num_heads, num_layers, patch_size, eps, text_len); vaeStride: frames, height,
// width per latent (models/latent_grid.h kVaeStride); patch: the DiT's (t, h, w) (DitArch::patch).
Napi::Value ModelConstants(const Napi::CallbackInfo& info);

// ditFacts(dit: JSON string, sp: number, ulysses: number, bytesPerElement: number) -> JSON string,
// synchronous:
//   {"blockParams": {"total": n, "float32": n},
//    "shardParts": [{"elements": n, "bytesPerElement": e}, ...],
//    "ulyssesHeadGroups": g}
// dit: an object with at least dim, ffn_dim and num_heads (a preset's "dit" above, or a model's
// info().dit); other keys are ignored. blockParams: models/memory_model.h dit_block_params;
// shardParts: dit_shard_parts for a block sharded over `sp` ranks computing in `bytesPerElement`
// (4: one float32 buffer; 2: a bf16/f16 buffer and a float32 one); ulyssesHeadGroups: the head
// groups each rank's num_heads/ulysses heads are pipelined in (parallel/ulysses.h; 1 when
// ulysses <= 1). A bad argument throws a TypeError naming it.
Napi::Value DitFacts(const Napi::CallbackInfo& info);

// memoryPlan(arch: string, options: string) -> JSON string, synchronous: models/memory_model.h
// plan_memory's MemoryPlan as to_json writes it (dit_resident_bytes, dit_streamed_bytes,
// dit_activation_bytes, ..., denoise_peak_bytes, peak_bytes, host_bytes).
// arch: a preset name ("tiny", "1.3B", "14B") or the JSON of {"dit", "t5", "vae"}, each part as
// checkpoint/arch.h to_json writes it (an engine's info() or a preset of modelConstants(); eps is
// not read). options: the JSON of MemoryPlanOptions in camelCase, every key optional: height,
// width, numFrames, sequenceParallel, persistentParams, shardWeights, t5OnDevice, t5Offload,
// vaeOnDevice, tiled, tileH, tileW, bytesPerValue (2 or 4), gpu, ditF8, blockResiduals,
// encodeVideo, ranksOnDevice. A missing or bad arch value, or an unknown option, throws an Error
// with code "WANLAB_PARAM" and `field` naming it ("arch.dit.dim", "numFrames").
Napi::Value MemoryPlanOf(const Napi::CallbackInfo& info);

}  // namespace wanjs

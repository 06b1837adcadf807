// Analytic FLOPs of one forward of each model (a multiply-add counts 2; norms, activations,
// softmax and elementwise work are left out), for the benches' GFLOP/s and their estimates.
#pragma once
#include <cstdint>

#include "checkpoint/arch.h"

namespace wan {

// tokens = (f / pt)(h / ph)(w / pw) for latents [in_dim, f, h, w]; Lc = text length.
double dit_flops(const DitArch& a, int64_t tokens, int64_t text_len);
// Decode of latents [z_dim, f, h, w], untiled, chunk by chunk as DiffSynth runs it.
double vae_decode_flops(const VaeArch& a, int64_t f, int64_t h, int64_t w);
double t5_flops(const T5Arch& a, int64_t tokens);

}  // namespace wan

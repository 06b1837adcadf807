// Initial noise, bit-identical to DiffSynth-Studio and ComfyUI: torch.manual_seed(seed) on a CPU
// generator, then torch.randn(shape) in float32 — so a seed means the same video across tools.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace wan {

// shape e.g. [1, 16, f, h, w]; any seed in [0, 2^64 - 1].
at::Tensor initial_noise(uint64_t seed, at::IntArrayRef shape);

}  // namespace wan

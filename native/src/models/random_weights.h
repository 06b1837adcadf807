// Deterministic random weights for any architecture: the tiny test models and real-size
// checkpoints for load and speed measurements, without downloading anything.
#pragma once
#include <cstdint>
#include <vector>

#include "checkpoint/layout.h"
#include "checkpoint/arch.h"

namespace wan {

// One tensor of `spec`, float32, from a generator seeded by (seed, name): the same name and seed
// give the same values whatever the order or the set of tensors generated. Values are exactly
// representable in bf16 and f16, so every layout's dtype stores them without rounding and the
// layouts can be compared bit for bit. Scales follow the module kind: weights ~ N(0, 1/fan_in),
// norm scales ~ 1 + N(0, 0.1), biases ~ N(0, 0.02), embeddings ~ N(0, 1).
//
// On a CUDA device the values come from PyTorch's CUDA generator instead (fast for real sizes):
// different numbers, the same recipe, reproduced in Python by bench/peer.py as
//   g = torch.Generator(device="cuda").manual_seed(name_seed(name, seed)); torch.randn(shape, generator=g)
// followed by the same scale and the same bf16 -> f16 -> f32 rounding.
at::Tensor random_tensor(const TensorSpec& spec, uint64_t seed, const at::Device& device = at::kCPU);
// The generator seed of one tensor: FNV-1a of the name, started from seed * 0x9E3779B97F4A7C15 + 1.
uint64_t name_seed(const std::string& name, uint64_t seed);

// A whole T2V model of random weights in memory, no files (--random-weights 1.3B|14B): every
// tensor of the preset architecture, generated on `device` and held there in `dtype`.
// dit_f8: the DiT's block linear weights rounded to float8 e4m3 (a float8 checkpoint, which the
// DiT keeps at 1 B per weight; common/dtype.h encode_f8 needs libtorch >= 2.1).
LoadedModel random_model(const std::string& dims, uint64_t seed, const at::Device& device,
                         at::ScalarType dtype = at::kBFloat16, bool dit_f8 = false);

}  // namespace wan

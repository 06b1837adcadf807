// Deterministic random weights for any architecture: the tiny test models and real-size
// checkpoints for load and speed measurements, without downloading anything.
#pragma once
#include <cstdint>
#include <vector>

#include "models/arch.h"

namespace wan {

// One tensor of `spec`, float32, from a generator seeded by (seed, name): the same name and seed
// give the same values whatever the order or the set of tensors generated. Values are exactly
// representable in bf16 and f16, so every layout's dtype stores them without rounding and the
// layouts can be compared bit for bit. Scales follow the module kind: weights ~ N(0, 1/fan_in),
// norm scales ~ 1 + N(0, 0.1), biases ~ N(0, 0.02), embeddings ~ N(0, 1).
at::Tensor random_tensor(const TensorSpec& spec, uint64_t seed);

}  // namespace wan

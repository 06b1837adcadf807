#include "pipeline/noise.h"

#include <ATen/CPUGeneratorImpl.h>

namespace wan {

at::Tensor initial_noise(uint64_t seed, at::IntArrayRef shape) {
  // torch.Generator("cpu").manual_seed(seed) builds exactly this: an mt19937 seeded with the
  // 64-bit seed (the Philox/normal caches reset). ATen's randn then takes its own size-dependent
  // path (vectorised for >= 16 elements), the same code PyTorch runs.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace wan

#include "models/random_weights.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common/cuda.h"
#include "common/strings.h"

namespace wan {

namespace {
uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

uint64_t name_seed(const std::string& name, uint64_t seed) { return fnv1a(name, seed * 0x9E3779B97F4A7C15ull + 1); }

at::Tensor random_tensor(const TensorSpec& spec, uint64_t seed, const at::Device& device) {
  const uint64_t s = name_seed(spec.name, seed);
  at::Generator gen = device.is_cpu() ? at::make_generator<at::CPUGeneratorImpl>(s) : seeded_generator(device, s);
  at::Tensor x = at::randn(spec.shape, gen, at::TensorOptions().dtype(at::kFloat).device(device));
  const std::string& n = spec.name;
  if (ends_with(n, ".gamma") || (contains(n, "norm") && ends_with(n, ".weight"))) {
    x = x.mul_(0.1f).add_(1.0f);
  } else if (ends_with(n, ".bias")) {
    x = x.mul_(0.02f);
  } else if (ends_with(n, "modulation")) {
    x = x.mul_(1.0f / std::sqrt(static_cast<float>(spec.shape.back())));
  } else if (contains(n, "token_embedding") || contains(n, "pos_embedding")) {
    // N(0, 1): already
  } else if (spec.shape.size() >= 2) {
    int64_t fan_in = 1;
    for (size_t i = 1; i < spec.shape.size(); ++i) fan_in *= spec.shape[i];
    x = x.mul_(1.0f / std::sqrt(static_cast<float>(fan_in)));
  }
  // Round through bf16 then f16: the result is exact in bf16, f16 and f32.
  return x.to(at::kBFloat16).to(at::kHalf).to(at::kFloat);
}

LoadedModel random_model(const std::string& dims, uint64_t seed, const at::Device& device, at::ScalarType dtype,
                         bool dit_f8) {
  LoadedModel m;
  m.arch = preset_arch(dims);
  m.files.dir = "(random " + dims + " weights, seed " + std::to_string(seed) + ")";
  auto fill = [&](TensorMap& out, const std::vector<TensorSpec>& specs) {
    for (const auto& s : specs) out[s.name] = stored(random_tensor(s, seed, device).to(dtype));
  };
  fill(m.dit, dit_specs(m.arch.dit));
  if (dit_f8)
    for (auto& [name, t] : m.dit)
      if (is_block_linear_weight(name, t.data.dim()))
        t = {encode_f8(t.data, DType::F8_E4M3), DType::F8_E4M3};
  fill(m.t5, t5_specs(m.arch.t5));
  fill(m.vae, vae_specs(m.arch.vae));
  return m;
}

}  // namespace wan

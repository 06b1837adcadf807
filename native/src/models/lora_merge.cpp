#include "models/lora_merge.h"

#include <c10/core/InferenceMode.h>

#include <map>

#include "common/strings.h"

namespace wan {

namespace {
// The weights the DiT keeps in float32 whatever the compute dtype (models/dit.cpp).
bool kept_float32(const std::string& target) {
  return ends_with(target, "modulation") || ends_with(target, "norm3.weight") || ends_with(target, "norm3.bias");
}
}  // namespace

void apply_loras(WanDiT& dit, const std::vector<LoraUse>& set) {
  c10::InferenceMode guard;
  dit.restore_base();
  // target -> the terms touching it, in set order.
  std::map<std::string, std::vector<std::pair<const LoraTerm*, double>>> by_target;
  for (const LoraUse& u : set)
    for (const LoraTerm& t : u.file->terms) by_target[t.target].push_back({&t, u.scale});
  try {
    for (const auto& [target, terms] : by_target) {
      const at::Tensor base = dit.base_tensor(target);
      const at::Device dev = base.device();
      at::Tensor w = base.to(at::kFloat);  // a new tensor below: the base is never written
      for (const auto& [t, scale] : terms) {
        if (t->up.defined()) w = w + scale * at::mm(t->up.to(dev), t->down.to(dev));  // [out, r] · [r, in]
        if (t->diff.defined()) w = w + scale * t->diff.to(dev);
      }
      dit.use_tensor(target, w.to(base.scalar_type()).contiguous());
    }
  } catch (...) {
    dit.restore_base();  // a half-applied set never stays
    throw;
  }
}

int64_t lora_working_bytes(const std::vector<LoraUse>& set, at::ScalarType compute) {
  std::map<std::string, int64_t> numel;
  for (const LoraUse& u : set)
    for (const LoraTerm& t : u.file->terms)
      numel[t.target] = t.up.defined() ? t.up.size(0) * t.down.size(1) : t.diff.numel();
  int64_t bytes = 0;
  for (const auto& [target, n] : numel) bytes += n * (kept_float32(target) ? 4 : int64_t(c10::elementSize(compute)));
  return bytes;
}

}  // namespace wan

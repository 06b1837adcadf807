#include "models/lora_merge.h"

#include <c10/core/InferenceMode.h>

#include <map>
#include <set>

#include "models/memory_model.h"

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
      // w: float32 elements [begin, end) of the flattened weight (all of it, or this rank's part
      // of a sharded one); each term is computed whole and the same elements taken, so every
      // element gets the same float32 operations whatever the placement. A new tensor each
      // time: the base is never written.
      dit.merge_tensor(target, [&](const at::Tensor& w0, int64_t begin, int64_t end) {
        const at::Device dev = w0.device();
        at::Tensor w = w0;
        for (const auto& [t, scale] : terms) {
          if (t->up.defined())  // [out, r] · [r, in]
            w = w + (scale * at::mm(t->up.to(dev), t->down.to(dev))).reshape({-1}).narrow(0, begin, end - begin);
          if (t->diff.defined()) w = w + (scale * t->diff.to(dev)).reshape({-1}).narrow(0, begin, end - begin);
        }
        return w;
      });
    }
  } catch (...) {
    dit.restore_base();  // a half-applied set never stays
    throw;
  }
}

int64_t lora_working_bytes(const std::vector<LoraUse>& set, at::ScalarType compute, const DitArch& arch, int shards) {
  std::map<std::string, int64_t> numel;
  for (const LoraUse& u : set)
    for (const LoraTerm& t : u.file->terms)
      numel[t.target] = t.up.defined() ? t.up.size(0) * t.down.size(1) : t.diff.numel();
  const int64_t B = int64_t(c10::elementSize(compute));
  const BlockParams bp = dit_block_params(arch);
  std::set<std::pair<std::string, bool>> parts;  // sharded: (block, float32 group) touched
  int64_t bytes = 0;
  for (const auto& [target, n] : numel) {
    const bool f32 = kept_float32(target);
    const size_t dot = target.find('.', 7);
    if (shards > 1 && starts_with(target, "blocks.") && dot != std::string::npos) {
      if (parts.insert({target.substr(0, dot), f32 && B != 4}).second)
        bytes += f32 && B != 4 ? (bp.float32 * 4 + shards - 1) / shards
                               : ((bp.total - (B != 4 ? bp.float32 : 0)) * B + shards - 1) / shards;
    } else {
      bytes += n * (f32 ? 4 : B);
    }
  }
  return bytes;
}

}  // namespace wan

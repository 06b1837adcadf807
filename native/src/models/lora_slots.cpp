// WanDiT's tensors by canonical name, for LoRA working copies (models/lora_merge.h): the base
// tensor of a name, a working copy used in its place, and the base put back, the same tensor.
#include <cstring>

#include "common/cuda.h"
#include "common/error.h"
#include "common/strings.h"
#include "models/dit.h"

namespace wan {

// The member that holds `name`; *linear is its Linear when `name` is a linear's weight (float8
// bytes are replaced with the Linear's type), *offloaded whether its block lives in host memory.
at::Tensor* WanDiT::lora_slot(const std::string& name, Linear** linear, bool* offloaded) {
  *linear = nullptr, *offloaded = false;
  auto in_linear = [&](Linear& l, const std::string& rest) -> at::Tensor* {
    if (rest == "weight") return *linear = &l, &l.w;
    if (rest == "bias") return &l.b;
    return nullptr;
  };
  auto after = [&](const std::string& s, const char* p, std::string& rest) {
    if (!starts_with(s, p)) return false;
    rest = s.substr(strlen(p));
    return true;
  };
  std::string rest;
  at::Tensor* t = nullptr;
  if (name == "patch_embedding.weight") t = &patch_w;
  else if (name == "patch_embedding.bias") t = &patch_b;
  else if (name == "head.modulation") t = &head_modulation;
  else if (after(name, "text_embedding.0.", rest)) t = in_linear(text0, rest);
  else if (after(name, "text_embedding.2.", rest)) t = in_linear(text2, rest);
  else if (after(name, "time_embedding.0.", rest)) t = in_linear(time0, rest);
  else if (after(name, "time_embedding.2.", rest)) t = in_linear(time2, rest);
  else if (after(name, "time_projection.1.", rest)) t = in_linear(time_proj, rest);
  else if (after(name, "head.head.", rest)) t = in_linear(head, rest);
  else if (after(name, "blocks.", rest)) {
    const size_t dot = rest.find('.');
    const std::string num = rest.substr(0, dot);
    if (dot != std::string::npos && !num.empty() && num.size() < 7 &&
        num.find_first_not_of("0123456789") == std::string::npos && std::stoll(num) < int64_t(blocks.size())) {
      Block& b = blocks[size_t(std::stoll(num))];
      if (!b.parts.empty())
        fail("LoRA: the DiT's block weights are sharded across ", weight_shards_, " ranks (shard weights); LoRA "
             "working copies of sharded weights are not supported: open the engine without shard weights to use LoRAs");
      *offloaded = b.offloaded;
      const std::string r = rest.substr(dot + 1);
      std::string lin;
      for (Attention* a : {&b.self_attn, &b.cross_attn}) {
        const std::string an = a == &b.self_attn ? "self_attn." : "cross_attn.";
        if (!after(r, an.c_str(), lin)) continue;
        const std::pair<const char*, Linear*> ls[] = {{"q.", &a->q}, {"k.", &a->k}, {"v.", &a->v}, {"o.", &a->o}};
        for (auto [p, l] : ls)
          if (std::string x; after(lin, p, x)) t = in_linear(*l, x);
        if (lin == "norm_q.weight") t = &a->norm_q;
        if (lin == "norm_k.weight") t = &a->norm_k;
      }
      if (r == "norm3.weight") t = &b.norm3_w;
      if (r == "norm3.bias") t = &b.norm3_b;
      if (r == "modulation") t = &b.modulation;
      if (after(r, "ffn.0.", lin)) t = in_linear(b.ffn0, lin);
      if (after(r, "ffn.2.", lin)) t = in_linear(b.ffn2, lin);
    }
  }
  if (!t) fail("LoRA: the DiT has no tensor named ", name);
  return t;
}

at::Tensor WanDiT::base_tensor(const std::string& name) const {
  auto* self = const_cast<WanDiT*>(this);  // lora_slot only finds the member
  Linear* l;
  bool offloaded;
  const at::Tensor* t = self->lora_slot(name, &l, &offloaded);
  if (auto it = lora_base_.find(name); it != lora_base_.end()) {  // a working copy is in use
    const SavedTensor& s = it->second;
    return s.f8 ? weight(Linear{s.t, {}, s.f8, s.scale}) : s.t;
  }
  return l ? weight(*l) : *t;
}

void WanDiT::use_tensor(const std::string& name, const at::Tensor& t) {
  Linear* l;
  bool offloaded;
  at::Tensor* slot = lora_slot(name, &l, &offloaded);
  const at::Tensor base = base_tensor(name);
  if (!t.sizes().equals(base.sizes()) || t.scalar_type() != base.scalar_type() || t.device() != base.device())
    fail("LoRA: working copy of ", name, " must be ", base.sizes(), " ", base.scalar_type(), " on ", base.device().str(),
         ", got ", t.sizes(), " ", t.scalar_type(), " on ", t.device().str());
  if (!lora_base_.count(name))
    lora_base_[name] = l ? SavedTensor{l->w, l->f8, l->scale} : SavedTensor{*slot, {}, 1.0f};
  // An offloaded block's tensors are copied in from pinned memory one block ahead of the compute.
  *slot = offloaded && device_.is_cuda() ? pinned_copy(t) : t;
  if (l) l->f8.reset(), l->scale = 1.0f;
}

void WanDiT::restore_base() {
  for (auto& [name, s] : lora_base_) {
    Linear* l;
    bool offloaded;
    at::Tensor* slot = lora_slot(name, &l, &offloaded);
    *slot = s.t;
    if (l) l->f8 = s.f8, l->scale = s.scale;
  }
  lora_base_.clear();
}

int64_t WanDiT::working_bytes() const {
  int64_t n = 0;
  auto* self = const_cast<WanDiT*>(this);
  for (const auto& [name, s] : lora_base_) {
    Linear* l;
    bool offloaded;
    const at::Tensor* t = self->lora_slot(name, &l, &offloaded);
    n += t->numel() * int64_t(t->element_size());
  }
  return n;
}

}  // namespace wan

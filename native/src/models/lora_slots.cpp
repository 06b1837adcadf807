// WanDiT's tensors by canonical name, for LoRA working copies (models/lora_merge.h): the base
// tensor of a name, a working copy used in its place, and the base put back, the same tensor.
#include <algorithm>
#include <cstring>

#include "common/cuda.h"
#include "common/error.h"
#include "common/strings.h"
#include "models/dit.h"

namespace wan {

// The member that holds `name`; *linear is its Linear when `name` is a linear's weight (float8
// bytes are replaced with the Linear's type), *offloaded whether its block lives in host memory,
// *block its block's index (-1 outside the blocks). A sharded block's members are empty: its
// tensors live in Block::parts (merge_tensor).
at::Tensor* WanDiT::lora_slot(const std::string& name, Linear** linear, bool* offloaded, int64_t* block) {
  *linear = nullptr, *offloaded = false, *block = -1;
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
      *block = std::stoll(num);
      Block& b = blocks[size_t(*block)];
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
  int64_t block;
  const at::Tensor* t = self->lora_slot(name, &l, &offloaded, &block);
  if (block >= 0 && !blocks[size_t(block)].parts.empty())
    fail("LoRA: ", name, " is sharded across ", weight_shards_, " ranks; only this rank's part of it is here");
  if (auto it = lora_base_.find(name); it != lora_base_.end()) {  // a working copy is in use
    const SavedTensor& s = it->second;
    return s.f8 ? weight(Linear{s.t, {}, s.f8, s.scale}) : s.t;
  }
  return l ? weight(*l) : *t;
}

void WanDiT::use_tensor(const std::string& name, const at::Tensor& t) {
  Linear* l;
  bool offloaded;
  int64_t block;
  at::Tensor* slot = lora_slot(name, &l, &offloaded, &block);
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

void WanDiT::merge_tensor(const std::string& name, const Merge& merged) {
  Linear* l;
  bool offloaded;
  int64_t bi;
  at::Tensor* member = lora_slot(name, &l, &offloaded, &bi);
  if (bi < 0 || blocks[size_t(bi)].parts.empty()) {
    const at::Tensor base = base_tensor(name);
    const at::Tensor w = merged(base.to(at::kFloat).reshape({-1}), 0, base.numel());
    use_tensor(name, w.view(base.sizes()).to(base.scalar_type()).contiguous());
    return;
  }
  // Sharded: this rank's slice [lo, lo + S) of the block's flat buffer of the tensor's dtype
  // group; the tensor is [off, off + n) of that buffer.
  Block& b = blocks[size_t(bi)];
  std::vector<at::Tensor*> ts = b.tensors();
  const size_t i = size_t(std::find(ts.begin(), ts.end(), member) - ts.begin());
  const FlatSlot& f = flat_layout_.at(i);
  if (f.group == 2) fail("LoRA: ", name, " is a float8 weight sharded across ranks, which takes no LoRA");
  int64_t n = 1;
  for (int64_t d : f.shape) n *= d;
  const auto key = std::make_pair(size_t(bi), size_t(f.group));
  if (!lora_base_parts_.count(key)) {
    lora_base_parts_[key] = b.parts[size_t(f.group)];
    b.parts[size_t(f.group)] = b.parts[size_t(f.group)].clone();
  }
  const at::Tensor& base = lora_base_parts_[key];
  const int64_t S = base.numel(), lo = int64_t(weight_shard_) * S;
  const int64_t begin = std::max(f.offset, lo), end = std::min(f.offset + n, lo + S);
  if (begin >= end) return;  // none of it on this rank
  const at::Tensor w = merged(base.narrow(0, begin - lo, end - begin).to(at::kFloat), begin - f.offset, end - f.offset);
  b.parts[size_t(f.group)].narrow(0, begin - lo, end - begin).copy_(w.to(base.scalar_type()));
}

void WanDiT::restore_base() {
  for (auto& [name, s] : lora_base_) {
    Linear* l;
    bool offloaded;
    int64_t block;
    at::Tensor* slot = lora_slot(name, &l, &offloaded, &block);
    *slot = s.t;
    if (l) l->f8 = s.f8, l->scale = s.scale;
  }
  lora_base_.clear();
  for (auto& [key, part] : lora_base_parts_) blocks[key.first].parts[key.second] = part;
  lora_base_parts_.clear();
}

int64_t WanDiT::working_bytes() const {
  int64_t n = 0;
  auto* self = const_cast<WanDiT*>(this);
  for (const auto& [name, s] : lora_base_) {
    Linear* l;
    bool offloaded;
    int64_t block;
    const at::Tensor* t = self->lora_slot(name, &l, &offloaded, &block);
    n += t->numel() * int64_t(t->element_size());
  }
  for (const auto& [key, part] : lora_base_parts_) n += part.numel() * int64_t(part.element_size());
  return n;
}

}  // namespace wan

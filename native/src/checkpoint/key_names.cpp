// The tensor names of each layout against the canonical (official Wan2.1) names: the diffusers
// and Hugging Face spellings of the DiT, T5 and VAE keys, ComfyUI's DiT prefix, in both
// directions (to_canonical when loading, layout_key when writing a layout).
#include "checkpoint/key_names.h"

#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "common/error.h"

namespace wan {

namespace {

constexpr const char* kComfyDitPrefix = "model.diffusion_model.";

// Official DiT name <-> diffusers WanTransformer3DModel name (diffusers' convert_wan_to_diffusers.py).
const std::vector<std::pair<std::string, std::string>>& dit_diffusers_globals() {
  static const std::vector<std::pair<std::string, std::string>> t = {
      {"patch_embedding.weight", "patch_embedding.weight"},
      {"patch_embedding.bias", "patch_embedding.bias"},
      {"text_embedding.0.weight", "condition_embedder.text_embedder.linear_1.weight"},
      {"text_embedding.0.bias", "condition_embedder.text_embedder.linear_1.bias"},
      {"text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"},
      {"text_embedding.2.bias", "condition_embedder.text_embedder.linear_2.bias"},
      {"time_embedding.0.weight", "condition_embedder.time_embedder.linear_1.weight"},
      {"time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias"},
      {"time_embedding.2.weight", "condition_embedder.time_embedder.linear_2.weight"},
      {"time_embedding.2.bias", "condition_embedder.time_embedder.linear_2.bias"},
      {"time_projection.1.weight", "condition_embedder.time_proj.weight"},
      {"time_projection.1.bias", "condition_embedder.time_proj.bias"},
      {"head.head.weight", "proj_out.weight"},
      {"head.head.bias", "proj_out.bias"},
      {"head.modulation", "scale_shift_table"},
  };
  return t;
}
// Per-block suffixes (after "blocks.N.").
const std::vector<std::pair<std::string, std::string>>& dit_diffusers_block() {
  static const std::vector<std::pair<std::string, std::string>> t = [] {
    std::vector<std::pair<std::string, std::string>> r;
    const std::pair<const char*, const char*> attn[] = {{"self_attn", "attn1"}, {"cross_attn", "attn2"}};
    const std::pair<const char*, const char*> proj[] = {{"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"o", "to_out.0"}};
    for (auto [a, da] : attn) {
      for (auto [p, dp] : proj)
        for (const char* wb : {"weight", "bias"})
          r.push_back({std::string(a) + "." + p + "." + wb, std::string(da) + "." + dp + "." + wb});
      r.push_back({std::string(a) + ".norm_q.weight", std::string(da) + ".norm_q.weight"});
      r.push_back({std::string(a) + ".norm_k.weight", std::string(da) + ".norm_k.weight"});
    }
    r.push_back({"norm3.weight", "norm2.weight"});  // diffusers calls the cross-attention norm norm2
    r.push_back({"norm3.bias", "norm2.bias"});
    r.push_back({"ffn.0.weight", "ffn.net.0.proj.weight"});
    r.push_back({"ffn.0.bias", "ffn.net.0.proj.bias"});
    r.push_back({"ffn.2.weight", "ffn.net.2.weight"});
    r.push_back({"ffn.2.bias", "ffn.net.2.bias"});
    r.push_back({"modulation", "scale_shift_table"});
    return r;
  }();
  return t;
}

// Official T5 name <-> Hugging Face UMT5EncoderModel name (diffusers text_encoder, ComfyUI).
const std::vector<std::pair<std::string, std::string>>& t5_hf_block() {
  static const std::vector<std::pair<std::string, std::string>> t = {
      {"norm1.weight", "layer.0.layer_norm.weight"},
      {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
      {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
      {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
      {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
      {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
      {"norm2.weight", "layer.1.layer_norm.weight"},
      {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},  // the GELU branch
      {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},     // the linear branch
      {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"},
  };
  return t;
}

// Splits "blocks.12.rest" into (12, "rest"); returns false if `key` is not under `prefix`.
bool split_block(const std::string& key, const std::string& prefix, int64_t& index, std::string& rest) {
  if (key.compare(0, prefix.size(), prefix) != 0) return false;
  size_t dot = key.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  std::string num = key.substr(prefix.size(), dot - prefix.size());
  // More digits than any model has layers: not a block key (then refused as an unexpected tensor).
  if (num.size() > 6 || !std::all_of(num.begin(), num.end(), ::isdigit)) return false;
  index = std::stoll(num);
  rest = key.substr(dot + 1);
  return true;
}

std::string lookup(const std::vector<std::pair<std::string, std::string>>& table, const std::string& key,
                   bool forward) {
  for (const auto& [a, b] : table)
    if ((forward ? a : b) == key) return forward ? b : a;
  return "";
}

// Official VAE name -> diffusers AutoencoderKLWan name (diffusers' convert_vae), for the Wan2.1
// VAE structure (decoder levels of num_res_blocks+1 = 3 residual blocks and one upsampler).
std::string vae_to_diffusers(const std::string& k) {
  auto starts = [&](const std::string& p) { return k.compare(0, p.size(), p) == 0; };
  auto resblock = [](std::string rest) {
    const std::pair<const char*, const char*> r[] = {{"residual.0.", "norm1."}, {"residual.2.", "conv1."},
                                                     {"residual.3.", "norm2."}, {"residual.6.", "conv2."},
                                                     {"shortcut.", "conv_shortcut."}};
    for (auto [a, b] : r)
      if (rest.compare(0, strlen(a), a) == 0) return std::string(b) + rest.substr(strlen(a));
    return rest;
  };
  if (starts("conv1.")) return "quant_conv." + k.substr(6);
  if (starts("conv2.")) return "post_quant_conv." + k.substr(6);
  for (const std::string side : {"encoder.", "decoder."}) {
    if (!starts(side)) continue;
    std::string rest = k.substr(side.size());
    auto rstarts = [&](const std::string& p) { return rest.compare(0, p.size(), p) == 0; };
    if (rstarts("conv1.")) return side + "conv_in." + rest.substr(6);
    if (rstarts("head.0.")) return side + "norm_out." + rest.substr(7);
    if (rstarts("head.2.")) return side + "conv_out." + rest.substr(7);
    if (rstarts("middle.1.")) return side + "mid_block.attentions.0." + rest.substr(9);
    if (rstarts("middle.0.")) return side + "mid_block.resnets.0." + resblock(rest.substr(9));
    if (rstarts("middle.2.")) return side + "mid_block.resnets.1." + resblock(rest.substr(9));
    int64_t i;
    std::string sub;
    if (split_block(rest, "downsamples.", i, sub)) return side + "down_blocks." + std::to_string(i) + "." + resblock(sub);
    if (split_block(rest, "upsamples.", i, sub)) {
      int64_t group = i / 4, pos = i % 4;
      if (pos == 3) return side + "up_blocks." + std::to_string(group) + ".upsamplers.0." + sub;
      return side + "up_blocks." + std::to_string(group) + ".resnets." + std::to_string(pos) + "." + resblock(sub);
    }
  }
  return k;
}

// diffusers VAE name -> official, by inverting the forward map over the Wan VAE's canonical names
// (names depend only on the structure, not on the base dim).
const std::map<std::string, std::string>& vae_from_diffusers_table() {
  static const std::map<std::string, std::string> t = [] {
    std::map<std::string, std::string> r;
    VaeArch a{1, 1, 2, {1, 2, 4, 4}, {false, true, true}};
    for (const auto& s : vae_specs(a)) r[vae_to_diffusers(s.name)] = s.name;
    return r;
  }();
  return t;
}

}  // namespace

std::string to_canonical(Layout layout, Component c, const std::string& key, const std::string& file) {
  auto unknown = [&]() -> std::string { fail(file, ": unexpected tensor ", key, " for the ", component_name(c), " in the ", layout_name(layout), " layout"); };
  int64_t i;
  std::string rest;
  switch (c) {
    case Component::DiT: {
      std::string k = key;
      if (k.compare(0, strlen(kComfyDitPrefix), kComfyDitPrefix) == 0) k = k.substr(strlen(kComfyDitPrefix));
      if (layout == Layout::ComfyUI && k == "scaled_fp8") return "";  // marker: its dtype names the float8 type
      if (layout != Layout::Diffusers) return k;  // official names (validated against the spec later)
      if (split_block(k, "blocks.", i, rest)) {
        std::string r = lookup(dit_diffusers_block(), rest, false);
        return r.empty() ? unknown() : "blocks." + std::to_string(i) + "." + r;
      }
      std::string r = lookup(dit_diffusers_globals(), k, false);
      return r.empty() ? unknown() : r;
    }
    case Component::T5: {
      if (layout == Layout::Official) return key;
      if (key == "shared.weight") return "token_embedding.weight";
      if (key == "encoder.embed_tokens.weight" || key == "spiece_model" || key == "scaled_fp8") return "";
      if (key == "encoder.final_layer_norm.weight") return "norm.weight";
      if (split_block(key, "encoder.block.", i, rest)) {
        std::string r = lookup(t5_hf_block(), rest, false);
        return r.empty() ? unknown() : "blocks." + std::to_string(i) + "." + r;
      }
      return unknown();
    }
    case Component::VAE: {
      if (layout != Layout::Diffusers) return key;
      auto it = vae_from_diffusers_table().find(key);
      return it == vae_from_diffusers_table().end() ? unknown() : it->second;
    }
  }
  return unknown();
}

std::string layout_key(Layout layout, Component c, const std::string& canonical) {
  int64_t i;
  std::string rest;
  switch (c) {
    case Component::DiT:
      if (layout == Layout::Official) return canonical;
      if (layout == Layout::ComfyUI) return kComfyDitPrefix + canonical;
      if (split_block(canonical, "blocks.", i, rest)) {
        std::string r = lookup(dit_diffusers_block(), rest, true);
        if (!r.empty()) return "blocks." + std::to_string(i) + "." + r;
      } else {
        std::string r = lookup(dit_diffusers_globals(), canonical, true);
        if (!r.empty()) return r;
      }
      break;
    case Component::T5:
      if (layout == Layout::Official) return canonical;
      if (canonical == "token_embedding.weight") return "shared.weight";
      if (canonical == "norm.weight") return "encoder.final_layer_norm.weight";
      if (split_block(canonical, "blocks.", i, rest)) {
        std::string r = lookup(t5_hf_block(), rest, true);
        if (!r.empty()) return "encoder.block." + std::to_string(i) + "." + r;
      }
      break;
    case Component::VAE:
      return layout == Layout::Diffusers ? vae_to_diffusers(canonical) : canonical;
  }
  fail("internal: no ", layout_name(layout), " name for ", component_name(c), " tensor ", canonical);
}

}  // namespace wan

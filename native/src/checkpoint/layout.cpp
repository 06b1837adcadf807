#include "checkpoint/layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "formats/pth.h"
#include "formats/safetensors.h"
#include "common/error.h"
#include "common/json_limits.h"
#include "common/mapped_file.h"
#include "common/strings.h"

namespace fs = std::filesystem;

namespace wan {

namespace {

constexpr const char* kOfficialT5 = "models_t5_umt5-xxl-enc-bf16.pth";
constexpr const char* kOfficialVae = "Wan2.1_VAE.pth";
constexpr const char* kComfyDitPrefix = "model.diffusion_model.";

bool is_file(const fs::path& p) { return fs::is_regular_file(p); }

std::string join(const fs::path& a, const std::string& b) { return (a / b).string(); }

// The single `*.safetensors` file in `sub` (ComfyUI keeps one model per file).
std::string single_safetensors(const fs::path& sub) {
  std::vector<std::string> found;
  if (fs::is_directory(sub))
    for (const auto& e : fs::directory_iterator(sub))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") found.push_back(e.path().string());
  std::sort(found.begin(), found.end());
  if (found.empty()) fail(sub.string(), ": no .safetensors file");
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found) list += "\n  " + f;
    fail(sub.string(), ": several .safetensors files, keep one model per folder:", list);
  }
  return found[0];
}

// A safetensors component: NAME.safetensors, or NAME.safetensors.index.json and its shards.
ComponentFiles safetensors_component(const fs::path& dir, const std::string& name, const std::string& config) {
  ComponentFiles c;
  if (!config.empty() && is_file(dir / config)) c.config = join(dir, config);
  if (is_file(dir / (name + ".safetensors.index.json"))) {
    c.index = join(dir, name + ".safetensors.index.json");
    const nlohmann::json j = read_json_file(c.index, kSafetensorsIndexJson);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail(c.index, ": not a safetensors index (no weight_map object)");
    std::vector<std::string> shards;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string())
        fail(c.index, ": weight_map entry for tensor \"", tensor, "\" must be a shard's file name (a string), got ",
             json_describe(file));
      shards.push_back(join(dir, file.get<std::string>()));
    }
    std::sort(shards.begin(), shards.end());
    shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
    c.files = shards;
  } else if (is_file(dir / (name + ".safetensors"))) {
    c.files = {join(dir, name + ".safetensors")};
  }
  return c;
}

TensorMap load_safetensors_component(const ComponentFiles& c, bool mmap) {
  return c.index.empty() ? load_safetensors(c.files.at(0), mmap) : load_safetensors_index(c.index, mmap);
}


// ---- key names ---------------------------------------------------------------------------------

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

// Returns the canonical name of a file key, "" for keys that carry no weight of ours (tied
// copies, tokenizer blobs, fp8 markers), or throws naming the key.
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

}  // namespace

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Official: return "official";
    case Layout::Diffusers: return "diffusers";
    case Layout::ComfyUI: return "comfyui";
  }
  return "?";
}

const char* component_name(Component c) {
  switch (c) {
    case Component::DiT: return "dit";
    case Component::T5: return "t5";
    case Component::VAE: return "vae";
  }
  return "?";
}

const ComponentFiles& ModelFiles::component(Component c) const {
  return c == Component::DiT ? dit : c == Component::T5 ? t5 : vae;
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

ModelFiles detect_layout(const std::string& dir_str) {
  fs::path dir(dir_str);
  if (!fs::exists(dir)) fail("model directory ", dir_str, " does not exist");
  if (!fs::is_directory(dir)) fail(dir_str, " is not a directory (expected a Wan2.1 model directory)");
  ModelFiles m;
  m.dir = dir_str;
  auto require = [&](const ComponentFiles& c, const std::string& what) {
    if (c.files.empty()) fail(dir_str, ": the ", layout_name(m.layout), " layout needs ", what, ", which is missing");
  };
  if (is_file(dir / "model_index.json") || fs::is_directory(dir / "transformer")) {
    m.layout = Layout::Diffusers;
    m.dit = safetensors_component(dir / "transformer", "diffusion_pytorch_model", "config.json");
    m.t5 = safetensors_component(dir / "text_encoder", "model", "config.json");
    m.vae = safetensors_component(dir / "vae", "diffusion_pytorch_model", "config.json");
    m.tokenizer_dir = join(dir, "tokenizer");
    require(m.dit, "transformer/diffusion_pytorch_model.safetensors (or its .index.json and shards)");
    require(m.t5, "text_encoder/model.safetensors (or model.safetensors.index.json and shards)");
    require(m.vae, "vae/diffusion_pytorch_model.safetensors");
  } else if (fs::is_directory(dir / "diffusion_models")) {
    m.layout = Layout::ComfyUI;
    m.dit.files = {single_safetensors(dir / "diffusion_models")};
    m.t5.files = {single_safetensors(dir / "text_encoders")};
    m.vae.files = {single_safetensors(dir / "vae")};
    m.tokenizer_dir = join(dir, "tokenizer");
  } else if (is_file(dir / "config.json") &&
             (is_file(dir / "diffusion_pytorch_model.safetensors") ||
              is_file(dir / "diffusion_pytorch_model.safetensors.index.json"))) {
    m.layout = Layout::Official;
    m.dit = safetensors_component(dir, "diffusion_pytorch_model", "config.json");
    if (!is_file(dir / kOfficialT5)) fail(dir_str, ": the official layout needs ", kOfficialT5, ", which is missing");
    if (!is_file(dir / kOfficialVae)) fail(dir_str, ": the official layout needs ", kOfficialVae, ", which is missing");
    m.t5.files = {join(dir, kOfficialT5)};
    m.vae.files = {join(dir, kOfficialVae)};
    m.tokenizer_dir = join(dir / "google", "umt5-xxl");
  } else {
    fail(dir_str, " is not a Wan2.1 model directory: expected one of\n"
         "  official:  config.json + diffusion_pytorch_model.safetensors (or .safetensors.index.json + shards) + ",
         kOfficialT5, " + ", kOfficialVae, " + google/umt5-xxl/\n"
         "  diffusers: model_index.json + transformer/ + text_encoder/ + vae/ + tokenizer/\n"
         "  comfyui:   diffusion_models/ + text_encoders/ + vae/ (one .safetensors each)");
  }
  return m;
}

TensorMap load_component(const ModelFiles& m, Component c, bool mmap) {
  const ComponentFiles& files = m.component(c);
  const std::string& file = files.index.empty() ? files.files.at(0) : files.index;
  TensorMap raw;
  if (ends_with(file, ".pth")) {
    raw = load_pth(file, mmap);
  } else {
    raw = load_safetensors_component(files, mmap);
  }
  TensorMap out;
  for (auto& [key, t] : raw) {
    // ComfyUI scaled fp8: X.weight (float8) is worth X.weight * X.scale_weight (a float32
    // scalar), attached to the weight below. X.scale_input only matters to float8 matmuls of
    // the activations, which this engine does not do.
    if (ends_with(key, ".scale_weight") || ends_with(key, ".scale_input")) continue;
    std::string name = to_canonical(m.layout, c, key, file);
    if (name.empty()) continue;
    if (out.count(name)) fail(file, ": tensors ", key, " and another both map to ", name);
    StoredTensor v = t;
    auto sc = ends_with(key, ".weight") ? raw.find(key.substr(0, key.size() - 7) + ".scale_weight") : raw.end();
    if (sc != raw.end()) {
      const StoredTensor& s = sc->second;
      if (s.data.numel() != 1 || !s.data.is_floating_point())  // float8 sits in uint8 storage
        fail(file, ": ", sc->first, " must be one float32 scale, got ", dtype_name(s.dtype), " of ", s.data.numel(),
             " elements");
      const float scale = s.data.to(at::kFloat).item<float>();
      if (!std::isfinite(scale)) fail(file, ": ", sc->first, " is ", scale, ", not a finite scale");
      if (is_f8(t.dtype)) {
        v.scale = scale;  // stays float8: the DiT keeps its block linears that way (models/dit.h)
      } else {
        v = stored(t.data.to(at::kFloat) * scale);
      }
    }
    out.emplace(std::move(name), std::move(v));
  }
  return out;
}

ComponentConfig load_component_config(const ModelFiles& m, Component c) {
  const ComponentFiles& f = m.component(c);
  ComponentConfig out;
  out.values = nullptr;
  if (f.config.empty()) return out;
  out.file = f.config;
  nlohmann::json j = read_json_file(f.config, kConfigJson);
  if (m.layout != Layout::Diffusers) {
    out.values = std::move(j);
    return out;
  }
  nlohmann::json& o = out.values = nlohmann::json::object();
  auto copy = [&](const char* from, const char* to) {
    if (j.contains(from) && !j[from].is_null()) {
      o[to] = j[from];
      out.file_keys[to] = from;
    }
  };
  if (c == Component::DiT) {
    if (j.contains("num_attention_heads") && j.contains("attention_head_dim")) {
      // Both bounded so that their product cannot overflow; the shapes then check it.
      const int64_t heads = json_int(j, "num_attention_heads", f.config, 1, 1 << 20);
      const int64_t head_dim = json_int(j, "attention_head_dim", f.config, 1, 1 << 20);
      o["dim"] = heads * head_dim;
      out.file_keys["dim"] = "num_attention_heads x attention_head_dim";
    }
    copy("num_attention_heads", "num_heads");
    copy("ffn_dim", "ffn_dim");
    copy("freq_dim", "freq_dim");
    copy("in_channels", "in_dim");
    copy("out_channels", "out_dim");
    copy("num_layers", "num_layers");
    copy("text_dim", "text_dim");
    copy("patch_size", "patch_size");
    copy("eps", "eps");
  } else if (c == Component::T5) {
    copy("d_model", "dim");
    copy("d_ff", "dim_ffn");
    copy("num_heads", "num_heads");
    copy("num_layers", "num_layers");
    copy("vocab_size", "vocab");
    copy("relative_attention_num_buckets", "num_buckets");
  } else {
    copy("base_dim", "dim");
    copy("z_dim", "z_dim");
    copy("dim_mult", "dim_mult");
    copy("num_res_blocks", "num_res_blocks");
    copy("temperal_downsample", "temporal_downsample");  // sic: diffusers' AutoencoderKLWan spelling
  }
  return out;
}

LoadedModel load_model(const std::string& dir, bool mmap) {
  LoadedModel m;
  m.files = detect_layout(dir);
  auto where = [&](Component c) {
    const auto& f = m.files.component(c);
    return f.index.empty() ? f.files.at(0) : f.index;
  };
  // Configs first: small, and one that is not bounded, well-formed JSON is refused before any
  // weight file is opened; their values are checked against the shapes by infer_dit and
  // check_config_against, before anything is allocated from them.
  const ComponentConfig dit_config = load_component_config(m.files, Component::DiT);
  const ComponentConfig t5_config = load_component_config(m.files, Component::T5);
  const ComponentConfig vae_config = load_component_config(m.files, Component::VAE);
  m.dit = load_component(m.files, Component::DiT, mmap);
  m.arch.dit = infer_dit(m.dit, dit_config, where(Component::DiT));
  m.t5 = load_component(m.files, Component::T5, mmap);
  m.arch.t5 = infer_t5(m.t5, where(Component::T5));
  check_config_against(t5_config, to_json(m.arch.t5), where(Component::T5));
  m.vae = load_component(m.files, Component::VAE, mmap);
  m.arch.vae = infer_vae(m.vae, where(Component::VAE));
  check_config_against(vae_config, to_json(m.arch.vae), where(Component::VAE));
  if (m.arch.dit.text_dim != m.arch.t5.dim)
    fail(dir, ": the DiT expects text_dim ", m.arch.dit.text_dim, " but the T5 encoder has dim ", m.arch.t5.dim);
  if (m.arch.dit.in_dim != m.arch.vae.z_dim)
    fail(dir, ": the DiT expects in_dim ", m.arch.dit.in_dim, " latent channels but the VAE has z_dim ", m.arch.vae.z_dim);
  return m;
}

}  // namespace wan

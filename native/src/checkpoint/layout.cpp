#include "checkpoint/layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "checkpoint/key_names.h"
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

#include "checkpoint/arch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/strings.h"
#include "common/shape_str.h"

namespace wan {

namespace {

void add(std::vector<TensorSpec>& s, const std::string& name, std::vector<int64_t> shape) {
  s.push_back({name, std::move(shape)});
}
void add_linear(std::vector<TensorSpec>& s, const std::string& name, int64_t out, int64_t in, bool bias = true) {
  add(s, name + ".weight", {out, in});
  if (bias) add(s, name + ".bias", {out});
}

at::Tensor need(const TensorMap& t, const std::string& name, const std::string& what) {
  auto it = t.find(name);
  if (it == t.end()) fail(what, ": tensor ", name, " is missing");
  return it->second.data;
}

int64_t count_blocks(const TensorMap& t, const std::string& prefix, const std::string& what) {
  // prefix "blocks." -> number of distinct N in "blocks.N.*"; they must be 0..N-1.
  std::set<int64_t> ids;
  for (const auto& [name, _] : t) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t dot = name.find('.', prefix.size());
    std::string num = name.substr(prefix.size(), dot - prefix.size());
    if (num.empty() || !std::all_of(num.begin(), num.end(), ::isdigit)) continue;
    if (num.size() > 6) fail(what, ": tensor ", name, " has the layer index ", num, ", beyond any model (at most 999999)");
    ids.insert(std::stoll(num));
  }
  if (!ids.empty() && *ids.rbegin() != static_cast<int64_t>(ids.size()) - 1)
    fail(what, ": layer indices under ", prefix, " are not contiguous (highest ", *ids.rbegin(), ", count ", ids.size(),
         ")");
  return static_cast<int64_t>(ids.size());
}

bool is_weight_dtype(DType d) {
  switch (d) {
    case DType::BF16: case DType::F16: case DType::F32: case DType::F64: case DType::F8_E4M3: case DType::F8_E5M2:
      return true;
    default:
      return false;
  }
}

// A tensor the architecture is read from, with `dims` dimensions, each positive: an empty or
// oddly shaped one would give a zero (or a division by zero) where a dimension is expected.
at::Tensor need_shape(const TensorMap& t, const std::string& name, int64_t dims, const std::string& what) {
  at::Tensor x = need(t, name, what);
  if (x.dim() != dims) fail(what, ": tensor ", name, " must be ", dims, "-D, has shape ", shape_str(x.sizes()));
  for (int64_t d : x.sizes())
    if (d <= 0) fail(what, ": tensor ", name, " has shape ", shape_str(x.sizes()), ", whose dims must all be positive");
  return x;
}

// The integer a config gives for official key `key`, in [lo, hi]; errors name the key as the file spells it.
int64_t config_int(const ComponentConfig& c, const std::string& key, int64_t lo, int64_t hi, const std::string& why = "") {
  const std::string file_key = c.key(key);
  return json_int(nlohmann::json{{file_key, c.values.at(key)}}, file_key, c.file, lo, hi, why);
}

// A config count (official key `key`) must be a positive integer equal to what the shapes say.
void check_config(const ComponentConfig& c, const char* key, int64_t from_shapes, const std::string& what) {
  if (!c.values.is_object() || !c.values.contains(key)) return;
  const int64_t v = config_int(c, key, 1, std::numeric_limits<int64_t>::max());
  if (v != from_shapes)
    fail(c.file, ": config.json says \"", c.key(key), "\" = ", v, " but the tensor shapes give ", from_shapes, " (", what,
         ")");
}

// The residual block of the Wan VAE (RMS norm, SiLU, causal conv, twice; 1x1x1 shortcut if dims differ).
void add_vae_resblock(std::vector<TensorSpec>& s, const std::string& p, int64_t in, int64_t out) {
  add(s, p + ".residual.0.gamma", {in, 1, 1, 1});
  add(s, p + ".residual.2.weight", {out, in, 3, 3, 3});
  add(s, p + ".residual.2.bias", {out});
  add(s, p + ".residual.3.gamma", {out, 1, 1, 1});
  add(s, p + ".residual.6.weight", {out, out, 3, 3, 3});
  add(s, p + ".residual.6.bias", {out});
  if (in != out) {
    add(s, p + ".shortcut.weight", {out, in, 1, 1, 1});
    add(s, p + ".shortcut.bias", {out});
  }
}
void add_vae_attention(std::vector<TensorSpec>& s, const std::string& p, int64_t c) {
  add(s, p + ".norm.gamma", {c, 1, 1});
  add(s, p + ".to_qkv.weight", {3 * c, c, 1, 1});
  add(s, p + ".to_qkv.bias", {3 * c});
  add(s, p + ".proj.weight", {c, c, 1, 1});
  add(s, p + ".proj.bias", {c});
}
void add_vae_middle(std::vector<TensorSpec>& s, const std::string& p, int64_t c) {
  add_vae_resblock(s, p + ".0", c, c);
  add_vae_attention(s, p + ".1", c);
  add_vae_resblock(s, p + ".2", c, c);
}

}  // namespace

std::vector<TensorSpec> dit_specs(const DitArch& a) {
  std::vector<TensorSpec> s;
  const int64_t D = a.dim, F = a.ffn_dim;
  add(s, "patch_embedding.weight", {D, a.in_dim, a.patch[0], a.patch[1], a.patch[2]});
  add(s, "patch_embedding.bias", {D});
  add_linear(s, "text_embedding.0", D, a.text_dim);
  add_linear(s, "text_embedding.2", D, D);
  add_linear(s, "time_embedding.0", D, a.freq_dim);
  add_linear(s, "time_embedding.2", D, D);
  add_linear(s, "time_projection.1", 6 * D, D);
  for (int64_t i = 0; i < a.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* attn : {"self_attn", "cross_attn"}) {
      for (const char* p : {"q", "k", "v", "o"}) add_linear(s, b + attn + "." + p, D, D);
      add(s, b + attn + ".norm_q.weight", {D});
      add(s, b + attn + ".norm_k.weight", {D});
    }
    add(s, b + "norm3.weight", {D});
    add(s, b + "norm3.bias", {D});
    add_linear(s, b + "ffn.0", F, D);
    add_linear(s, b + "ffn.2", D, F);
    add(s, b + "modulation", {1, 6, D});
  }
  add_linear(s, "head.head", a.out_dim * a.patch[0] * a.patch[1] * a.patch[2], D);
  add(s, "head.modulation", {1, 2, D});
  return s;
}

std::vector<TensorSpec> t5_specs(const T5Arch& a) {
  std::vector<TensorSpec> s;
  add(s, "token_embedding.weight", {a.vocab, a.dim});
  if (a.shared_pos) add(s, "pos_embedding.embedding.weight", {a.num_buckets, a.num_heads});
  for (int64_t i = 0; i < a.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    add(s, b + "norm1.weight", {a.dim});
    for (const char* p : {"q", "k", "v"}) add_linear(s, b + "attn." + p, a.dim_attn, a.dim, false);
    add_linear(s, b + "attn.o", a.dim, a.dim_attn, false);
    add(s, b + "norm2.weight", {a.dim});
    add_linear(s, b + "ffn.gate.0", a.dim_ffn, a.dim, false);
    add_linear(s, b + "ffn.fc1", a.dim_ffn, a.dim, false);
    add_linear(s, b + "ffn.fc2", a.dim, a.dim_ffn, false);
    if (!a.shared_pos) add(s, b + "pos_embedding.embedding.weight", {a.num_buckets, a.num_heads});
  }
  add(s, "norm.weight", {a.dim});
  return s;
}

// Mirrors wan/modules/vae.py Encoder3d / Decoder3d construction for any base dim.
std::vector<TensorSpec> vae_specs(const VaeArch& a) {
  std::vector<TensorSpec> s;
  const size_t levels = a.dim_mult.size();
  // encoder: dims = dim * [1] + dim_mult
  std::vector<int64_t> enc{a.dim};
  for (int64_t m : a.dim_mult) enc.push_back(a.dim * m);
  add(s, "encoder.conv1.weight", {enc[0], 3, 3, 3, 3});
  add(s, "encoder.conv1.bias", {enc[0]});
  int idx = 0;
  for (size_t i = 0; i < levels; ++i) {
    int64_t in = enc[i], out = enc[i + 1];
    for (int64_t r = 0; r < a.num_res_blocks; ++r, in = out)
      add_vae_resblock(s, "encoder.downsamples." + std::to_string(idx++), in, out);
    if (i + 1 != levels) {
      const std::string p = "encoder.downsamples." + std::to_string(idx++);
      add(s, p + ".resample.1.weight", {out, out, 3, 3});
      add(s, p + ".resample.1.bias", {out});
      if (a.temporal_downsample[i]) {
        add(s, p + ".time_conv.weight", {out, out, 3, 1, 1});
        add(s, p + ".time_conv.bias", {out});
      }
    }
  }
  const int64_t top = enc.back();
  add_vae_middle(s, "encoder.middle", top);
  add(s, "encoder.head.0.gamma", {top, 1, 1, 1});
  add(s, "encoder.head.2.weight", {2 * a.z_dim, top, 3, 3, 3});
  add(s, "encoder.head.2.bias", {2 * a.z_dim});
  add(s, "conv1.weight", {2 * a.z_dim, 2 * a.z_dim, 1, 1, 1});
  add(s, "conv1.bias", {2 * a.z_dim});
  add(s, "conv2.weight", {a.z_dim, a.z_dim, 1, 1, 1});
  add(s, "conv2.bias", {a.z_dim});
  // decoder: dims = dim * [dim_mult[-1]] + reversed(dim_mult); temporal upsampling mirrors downsampling.
  std::vector<int64_t> dec{a.dim * a.dim_mult.back()};
  for (size_t i = levels; i-- > 0;) dec.push_back(a.dim * a.dim_mult[i]);
  add(s, "decoder.conv1.weight", {dec[0], a.z_dim, 3, 3, 3});
  add(s, "decoder.conv1.bias", {dec[0]});
  add_vae_middle(s, "decoder.middle", dec[0]);
  idx = 0;
  for (size_t i = 0; i < levels; ++i) {
    int64_t in = i > 0 ? dec[i] / 2 : dec[i], out = dec[i + 1];  // each upsample halves the channels
    for (int64_t r = 0; r < a.num_res_blocks + 1; ++r, in = out)
      add_vae_resblock(s, "decoder.upsamples." + std::to_string(idx++), in, out);
    if (i + 1 != levels) {
      const std::string p = "decoder.upsamples." + std::to_string(idx++);
      add(s, p + ".resample.1.weight", {out / 2, out, 3, 3});
      add(s, p + ".resample.1.bias", {out / 2});
      if (a.temporal_downsample[levels - 2 - i]) {
        add(s, p + ".time_conv.weight", {2 * out, out, 3, 1, 1});
        add(s, p + ".time_conv.bias", {2 * out});
      }
    }
  }
  const int64_t last = dec.back();
  add(s, "decoder.head.0.gamma", {last, 1, 1, 1});
  add(s, "decoder.head.2.weight", {3, last, 3, 3, 3});
  add(s, "decoder.head.2.bias", {3});
  return s;
}

void check_specs(const TensorMap& t, const std::vector<TensorSpec>& specs, const std::string& what) {
  std::set<std::string> expected;
  for (const auto& s : specs) {
    expected.insert(s.name);
    auto it = t.find(s.name);
    if (it == t.end()) fail(what, ": tensor ", s.name, " is missing (expected shape ", shape_str(s.shape), ")");
    if (it->second.data.sizes() != at::IntArrayRef(s.shape))
      fail(what, ": tensor ", s.name, " has shape ", shape_str(it->second.data.sizes()), ", expected ",
           shape_str(s.shape));
    if (!is_weight_dtype(it->second.dtype))
      fail(what, ": tensor ", s.name, " has the dtype ", dtype_name(it->second.dtype),
           "; a weight must be floating point (F32, BF16, F16, F64 or float8)");
  }
  for (const auto& [name, _] : t)
    if (!expected.count(name)) fail(what, ": unexpected tensor ", name);
}

std::string ComponentConfig::key(const std::string& official) const {
  auto it = file_keys.find(official);
  return it == file_keys.end() ? official : it->second;
}

DitArch infer_dit(const TensorMap& t, const ComponentConfig& config, const std::string& what) {
  DitArch a;
  const nlohmann::json& c = config.values;
  if (!c.is_null() && !c.is_object()) fail(config.file, ": not a JSON object");
  const bool has_config = c.is_object();
  at::Tensor pe = need_shape(t, "patch_embedding.weight", 5, what);  // [dim, in_dim, pt, ph, pw]
  a.dim = pe.size(0);
  a.in_dim = pe.size(1);
  a.patch = {pe.size(2), pe.size(3), pe.size(4)};
  a.text_dim = need_shape(t, "text_embedding.0.weight", 2, what).size(1);  // [dim, text_dim]
  a.freq_dim = need_shape(t, "time_embedding.0.weight", 2, what).size(1);  // [dim, freq_dim]
  a.num_layers = count_blocks(t, "blocks.", what);
  if (a.num_layers == 0) fail(what, ": no transformer blocks (blocks.N.*) found");
  a.ffn_dim = need_shape(t, "blocks.0.ffn.0.weight", 2, what).size(0);  // [ffn_dim, dim]
  at::Tensor head = need_shape(t, "head.head.weight", 2, what);         // [out_dim * pt * ph * pw, dim]
  const int64_t patch_volume = a.patch[0] * a.patch[1] * a.patch[2];
  if (head.size(0) % patch_volume != 0)
    fail(what, ": tensor head.head.weight has shape ", shape_str(head.sizes()), ", whose ", head.size(0),
         " outputs are not a multiple of the patch's ", patch_volume, " (", shape_str(a.patch), ")");
  a.out_dim = head.size(0) / patch_volume;
  if (has_config) {
    check_config(config, "dim", a.dim, what);
    check_config(config, "ffn_dim", a.ffn_dim, what);
    check_config(config, "freq_dim", a.freq_dim, what);
    check_config(config, "in_dim", a.in_dim, what);
    check_config(config, "out_dim", a.out_dim, what);
    check_config(config, "num_layers", a.num_layers, what);
    check_config(config, "text_dim", a.text_dim, what);
    if (c.contains("patch_size")) {
      const nlohmann::json& p = c["patch_size"];
      if (!p.is_array() || p.size() != 3 || !std::all_of(p.begin(), p.end(), [](const nlohmann::json& x) {
            return x.is_number_integer();
          }))
        fail(config.file, ": \"", config.key("patch_size"), "\" must be a list of 3 integers, got ", json_describe(p),
             " ", p.dump().substr(0, 60));
      if (p != nlohmann::json(a.patch))
        fail(config.file, ": config.json says \"", config.key("patch_size"), "\" = ", p.dump(),
             " but the tensor shapes give ", nlohmann::json(a.patch).dump(), " (", what, ")");
    }
    if (c.contains("model_type") && json_string(c, "model_type", config.file) != "t2v")
      fail(config.file, ": \"", config.key("model_type"), "\" is ", c["model_type"].dump(),
           ", which is not supported (only t2v)");
  }
  // Head count is invisible in the shapes (q/k norms span all heads): config.json, else head_dim 128.
  if (has_config && c.contains("num_heads")) {
    a.num_heads = config_int(config, "num_heads", 1, a.dim, concat("a count of heads, at most the model's dim ", a.dim));
    if (a.dim % a.num_heads != 0)
      fail(config.file, ": \"", config.key("num_heads"), "\" = ", a.num_heads, " but the dim ", a.dim,
           " of the tensor shapes is not divisible by num_heads ", a.num_heads, " (", what, ")");
  } else {
    if (a.dim % 128 != 0)
      fail(what, ": dim ", a.dim, " is not a multiple of Wan's head dim 128 and no config.json gives num_heads");
    a.num_heads = a.dim / 128;
  }
  // The engine's 3-D RoPE (models/rope.cpp, as DiffSynth) splits each head into frame, height and
  // width parts of head_dim - 2 (head_dim / 3), head_dim / 3 and head_dim / 3 channels, each rotated
  // in pairs: all three must be even.
  const int64_t head_dim = a.dim / a.num_heads, third = head_dim / 3;
  if (head_dim % 2 != 0 || third % 2 != 0 || third == 0)
    fail(has_config && c.contains("num_heads") ? config.file + ": \"" + config.key("num_heads") + "\"" : what,
         ": dim ", a.dim, " / num_heads ", a.num_heads, " gives the head dim ", head_dim,
         ", which the 3-D RoPE cannot split into even frame, height and width parts (", head_dim - 2 * third, ", ",
         third, ", ", third, "); head dims such as 96 or 128 can");
  if (has_config) {
    if (c.contains("text_len"))
      a.text_len = config_int(config, "text_len", 1, kMaxTextLen,
                              concat("the prompt length in tokens: UMT5's relative positions imply no length, so it is "
                                   "bounded at ", kMaxTextLen, "; Wan2.1 uses 512"));
    if (c.contains("eps")) {
      const nlohmann::json& e = c["eps"];
      const double v = e.is_number() ? e.get<double>() : NAN;
      if (!std::isfinite(v) || !(v > 0) || v > kMaxEps)
        fail(config.file, ": \"", config.key("eps"), "\" must be a finite number in (0, ", kMaxEps, "], got ",
             json_describe(e), " (the norms' epsilon; Wan2.1 uses 1e-06)");
      a.eps = v;
    }
  }
  check_specs(t, dit_specs(a), what);
  return a;
}

T5Arch infer_t5(const TensorMap& t, const std::string& what) {
  T5Arch a;
  at::Tensor emb = need_shape(t, "token_embedding.weight", 2, what);  // [vocab, dim]
  a.vocab = emb.size(0);
  a.dim = emb.size(1);
  a.num_layers = count_blocks(t, "blocks.", what);
  if (a.num_layers == 0) fail(what, ": no encoder blocks (blocks.N.*) found");
  a.dim_attn = need_shape(t, "blocks.0.attn.q.weight", 2, what).size(0);  // [dim_attn, dim]
  a.dim_ffn = need_shape(t, "blocks.0.ffn.fc1.weight", 2, what).size(0);  // [dim_ffn, dim]
  a.shared_pos = t.count("pos_embedding.embedding.weight") > 0;
  if (a.shared_pos)
    fail(what, ": tensor pos_embedding.embedding.weight is one relative-position table for all layers (T5's "
         "shared_pos); the engine runs UMT5, with one table per layer (blocks.N.pos_embedding.embedding.weight)");
  at::Tensor rel = need_shape(t, "blocks.0.pos_embedding.embedding.weight", 2, what);  // [num_buckets, num_heads]
  a.num_buckets = rel.size(0);
  a.num_heads = rel.size(1);
  if (a.num_buckets < 4 || a.num_buckets % 2 != 0)
    fail(what, ": tensor blocks.0.pos_embedding.embedding.weight has shape ", shape_str(rel.sizes()), ": its ",
         a.num_buckets, " relative-position buckets must be even and at least 4 (UMT5 has 32)");
  if (a.dim_attn % a.num_heads != 0)
    fail(what, ": attention dim ", a.dim_attn, " is not divisible by the ", a.num_heads,
         " heads of the relative-position table");
  check_specs(t, t5_specs(a), what);
  return a;
}

VaeArch infer_vae(const TensorMap& t, const std::string& what) {
  // Every Wan2.1 VAE has this structure; the base dim and latent channels come from the shapes.
  VaeArch a;
  a.dim = need_shape(t, "encoder.conv1.weight", 5, what).size(0);  // [dim, 3, 3, 3, 3]
  a.z_dim = need_shape(t, "conv2.weight", 5, what).size(0);        // [z_dim, z_dim, 1, 1, 1]
  if (a.z_dim != 16)
    fail(what, ": tensor conv2.weight gives z_dim ", a.z_dim,
         ", but the Wan2.1 latent statistics (mean/std) the VAE decodes with have 16 channels");
  a.dim_mult = {1, 2, 4, 4};
  a.num_res_blocks = 2;
  a.temporal_downsample = {false, true, true};
  check_specs(t, vae_specs(a), what);
  return a;
}

void check_config_against(const ComponentConfig& config, const nlohmann::json& arch, const std::string& what) {
  const nlohmann::json& c = config.values;
  if (c.is_null()) return;
  if (!c.is_object()) fail(config.file, ": not a JSON object");
  for (const auto& [k, v] : c.items()) {
    if (!arch.contains(k)) continue;
    const nlohmann::json& want = arch[k];
    if (want.is_number_integer()) {
      const int64_t got = config_int(config, k, 1, std::numeric_limits<int64_t>::max());
      if (got != want.get<int64_t>())
        fail(config.file, ": config.json says \"", config.key(k), "\" = ", got, " but the tensor shapes give ", want.dump(),
             " (", what, ")");
    } else if (v != want) {
      fail(config.file, ": config.json says \"", config.key(k), "\" = ", v.dump().substr(0, 80), " but the engine's ",
           "architecture for these tensors has ", want.dump(), " (", what, ")");
    }
  }
}

nlohmann::json to_json(const DitArch& a) {
  return {{"dim", a.dim},         {"ffn_dim", a.ffn_dim},   {"freq_dim", a.freq_dim}, {"text_dim", a.text_dim},
          {"in_dim", a.in_dim},   {"out_dim", a.out_dim},   {"num_heads", a.num_heads},
          {"num_layers", a.num_layers}, {"patch_size", a.patch}, {"eps", a.eps}, {"text_len", a.text_len}};
}
nlohmann::json to_json(const T5Arch& a) {
  return {{"vocab", a.vocab},         {"dim", a.dim},           {"dim_attn", a.dim_attn},
          {"dim_ffn", a.dim_ffn},     {"num_heads", a.num_heads}, {"num_layers", a.num_layers},
          {"num_buckets", a.num_buckets}, {"shared_pos", a.shared_pos}};
}
nlohmann::json to_json(const VaeArch& a) {
  return {{"dim", a.dim}, {"z_dim", a.z_dim}, {"dim_mult", a.dim_mult}, {"num_res_blocks", a.num_res_blocks},
          {"temporal_downsample", a.temporal_downsample}};
}

ModelArch preset_arch(const std::string& name) {
  ModelArch m;
  m.vae = {96, 16, 2, {1, 2, 4, 4}, {false, true, true}};
  m.t5 = {256384, 4096, 4096, 10240, 64, 24, 32, false};
  m.dit.freq_dim = 256;
  m.dit.in_dim = m.dit.out_dim = 16;
  m.dit.text_dim = 4096;
  if (name == "1.3B") {
    m.dit.dim = 1536, m.dit.ffn_dim = 8960, m.dit.num_heads = 12, m.dit.num_layers = 30;
  } else if (name == "14B") {
    m.dit.dim = 5120, m.dit.ffn_dim = 13824, m.dit.num_heads = 40, m.dit.num_layers = 40;
  } else if (name == "tiny") {
    // head_dim 128 as in the real models, so layouts without a config (ComfyUI) infer the same heads.
    m.dit.dim = 256, m.dit.ffn_dim = 512, m.dit.num_heads = 2, m.dit.num_layers = 2;
    m.t5 = {384, 64, 64, 128, 4, 2, 32, false};
    m.dit.text_dim = m.t5.dim;
    m.vae.dim = 8;
  } else {
    fail("unknown model dims '", name, "' (allowed: tiny, 1.3B, 14B)");
  }
  return m;
}

bool is_block_linear_weight(const std::string& name, int64_t dims) {
  return dims == 2 && starts_with(name, "blocks.") && name.find("pos_embedding") == std::string::npos &&
         ends_with(name, ".weight");
}

int64_t count_params(const std::vector<TensorSpec>& specs) {
  int64_t n = 0;
  for (const auto& s : specs) {
    int64_t k = 1;
    for (int64_t d : s.shape) k *= d;
    n += k;
  }
  return n;
}

}  // namespace wan

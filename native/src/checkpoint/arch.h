// Model architectures, read from tensor shapes (never hard-coded to 1.3B or 14B), and the
// canonical tensor list each architecture implies. Canonical names are the official Wan2.1
// names (wan/modules/model.py WanModel, t5.py T5Encoder, vae.py WanVAE) without prefixes.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/dtype.h"

namespace wan {

struct DitArch {
  int64_t dim = 0, ffn_dim = 0, freq_dim = 0, text_dim = 0, in_dim = 0, out_dim = 0;
  int64_t num_heads = 0, num_layers = 0;
  std::array<int64_t, 3> patch{1, 2, 2};  // (t, h, w)
  double eps = 1e-6;
  int64_t text_len = 512;
};

struct T5Arch {
  int64_t vocab = 0, dim = 0, dim_attn = 0, dim_ffn = 0, num_heads = 0, num_layers = 0, num_buckets = 0;
  bool shared_pos = false;  // umt5: one relative-position table per layer
};

struct VaeArch {
  int64_t dim = 0, z_dim = 0, num_res_blocks = 0;
  std::vector<int64_t> dim_mult;          // per resolution level, e.g. {1, 2, 4, 4}
  std::vector<bool> temporal_downsample;  // per downsampling step, e.g. {false, true, true}
};

// One tensor an architecture owns: canonical name and shape.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<TensorSpec> dit_specs(const DitArch& a);
std::vector<TensorSpec> t5_specs(const T5Arch& a);
std::vector<TensorSpec> vae_specs(const VaeArch& a);

// A component's config.json as the architecture reads it: `values` in official key names (a
// diffusers config translated; null: no config), `file` its path, and for each official key the
// key as the file spells it (errors name that one), e.g. "num_heads" -> "num_attention_heads".
struct ComponentConfig {
  nlohmann::json values;
  std::string file;
  std::map<std::string, std::string> file_keys;
  std::string key(const std::string& official) const;  // the file's name for `official`
};

// Bounds on what only a config gives, no tensor shape implies:
// text_len, the prompt length in tokens: UMT5's relative position buckets take any length, so the
// weights bound nothing; [1, 4096] (Wan2.1 uses 512; the text encoder's attention grows with its
// square).
constexpr int64_t kMaxTextLen = 4096;
// eps, the DiT's norm epsilon: finite, in (0, 0.01] (Wan2.1 uses 1e-6; <= 0 or NaN gives NaNs).
constexpr double kMaxEps = 1e-2;

// Architecture from canonical tensors, validated in full before anything is allocated from it:
// every dimension positive and consistent with the tensor shapes, the DiT's heads splittable by
// the engine's 3-D RoPE, every tensor a floating-point weight, and whatever the engine's models
// would refuse (UMT5 buckets, a shared position table, the VAE's 16 latent channels) refused here,
// so `inspect` and a load agree. `config` supplies what shapes cannot (the DiT's head count;
// without it Wan's head_dim of 128 is assumed as ComfyUI does; text_len; eps) and every value it
// gives is checked: type (a count is a positive integer), bounds, agreement with the shapes; each
// error names the config file and key, the value, and the range or the shape that contradicts it.
// The tensor set must then match the architecture's spec exactly (missing/unexpected/wrong-shape
// tensors named). `what` names the weights (a file or directory) in errors.
DitArch infer_dit(const TensorMap& t, const ComponentConfig& config, const std::string& what);
T5Arch infer_t5(const TensorMap& t, const std::string& what);
VaeArch infer_vae(const TensorMap& t, const std::string& what);
// A T5 or VAE config (official key names) against the architecture read from the shapes: every
// key the architecture has must be there with the same value (integers: integers; lists: equal).
void check_config_against(const ComponentConfig& config, const nlohmann::json& arch, const std::string& what);

// Checks `t` against `specs`: every spec present with its shape and a floating-point dtype
// (float8 included), nothing else.
void check_specs(const TensorMap& t, const std::vector<TensorSpec>& specs, const std::string& what);

nlohmann::json to_json(const DitArch& a);
nlohmann::json to_json(const T5Arch& a);
nlohmann::json to_json(const VaeArch& a);

// Named presets: "tiny" (the test bed), "1.3B", "14B" (real dims; the T5 and VAE are the same
// UMT5-XXL and Wan VAE for both).
struct ModelArch {
  DitArch dit;
  T5Arch t5;
  VaeArch vae;
};
ModelArch preset_arch(const std::string& name);

int64_t count_params(const std::vector<TensorSpec>& specs);

// A linear layer's weight inside a block (canonical names: the DiT's attention q/k/v/o and FFN,
// UMT5's attention and FFN): blocks.N.….weight with 2 dims, UMT5's position tables excepted. What
// float8 checkpoints store as float8.
bool is_block_linear_weight(const std::string& name, int64_t dims);

}  // namespace wan

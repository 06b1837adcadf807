// Model architectures, read from tensor shapes (never hard-coded to 1.3B or 14B), and the
// canonical tensor list each architecture implies. Canonical names are the official Wan2.1
// names (wan/modules/model.py WanModel, t5.py T5Encoder, vae.py WanVAE) without prefixes.
#pragma once
#include <array>
#include <cstdint>
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

// Architecture from canonical tensors. `config` (config.json, may be null) supplies what shapes
// cannot (the DiT's head count; without it, Wan's head_dim of 128 is assumed as ComfyUI does) and
// is checked against the shapes: a disagreement names the key and both values. The tensor set
// must then match the architecture's spec exactly (missing/unexpected/wrong-shape tensors named).
// `what` names the source (a file or directory) in errors.
DitArch infer_dit(const TensorMap& t, const nlohmann::json& config, const std::string& what);
T5Arch infer_t5(const TensorMap& t, const std::string& what);
VaeArch infer_vae(const TensorMap& t, const std::string& what);

// Checks `t` against `specs`: every spec present with its shape, nothing else.
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

// The Wan2.1 VAE's encoder and decoder networks (Encoder3d / Decoder3d), built from an
// architecture read from the weights (any base dim; 96 for the released VAE). They run one chunk
// at a time; the caller owns the FeatCache that carries state from chunk to chunk.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "checkpoint/arch.h"
#include "models/vae_layers.h"

namespace wan::vae {

// One resolution level: residual blocks, then (except at the last level) a resampling block.
struct Level {
  std::vector<ResidualBlock> blocks;
  std::optional<Resample> resample;
};

// The middle of both networks: residual, attention, residual.
struct Middle {
  ResidualBlock res1, res2;
  AttentionBlock attn;
  static Middle load(const WeightReader& w, const std::string& prefix, int64_t dim);
  at::Tensor forward(const at::Tensor& x, FeatCache& cache) const;
};

struct Encoder {
  CausalConv conv_in;  // encoder.conv1: 3 -> dim
  std::vector<Level> levels;
  Middle middle;
  at::Tensor head_gamma;
  CausalConv head_conv;  // encoder.head.2: top -> 2 * z_dim (mean and log-variance)
  static Encoder load(const WeightReader& w, const VaeArch& a);
  // x: [B, 3, T, H, W] (one chunk) -> [B, 2 z_dim, T', H / 8, W / 8]
  at::Tensor forward(const at::Tensor& x, FeatCache& cache) const;
};

struct Decoder {
  CausalConv conv_in;  // decoder.conv1: z_dim -> top
  Middle middle;
  std::vector<Level> levels;
  at::Tensor head_gamma;
  CausalConv head_conv;  // decoder.head.2: dim -> 3
  static Decoder load(const WeightReader& w, const VaeArch& a);
  // x: [B, z_dim, 1, h, w] (one latent frame) -> [B, 3, 1 or 4, 8h, 8w]
  at::Tensor forward(const at::Tensor& x, FeatCache& cache) const;
};

}  // namespace wan::vae

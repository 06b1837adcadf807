// The building blocks of the Wan2.1 VAE (wan/modules/vae.py; DiffSynth's wan_video_vae.py):
// causal 3-D convolutions with their per-chunk cache, RMS norm, residual and attention blocks,
// and the resampling blocks. Activations are [B, C, T, H, W] float32 throughout.
//
// Videos are processed a few frames at a time (a chunk). Every causal convolution keeps the last
// frames of its input across chunks (DiffSynth's feat_cache / feat_idx, CACHE_T = 2), so a
// chunked pass equals one causal pass over the whole video while memory stays bounded by the
// chunk. The temporal resampling convolutions keep their own, different state (see Resample).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "common/dtype.h"

namespace wan::vae {

// One cache slot per cached convolution, visited in call order during each chunk.
struct CacheSlot {
  at::Tensor frames;  // the last input frames kept for the next chunk (undefined: none yet)
  bool seen = false;  // a chunk has passed through (DiffSynth: feat_cache[idx] is not None)
  bool rep = false;   // upsample3d after the first chunk only (DiffSynth's 'Rep' marker)
};
struct FeatCache {
  std::vector<CacheSlot> slots;
  size_t idx = 0;
  void start_chunk() { idx = 0; }
  CacheSlot& next() {
    if (idx == slots.size()) slots.emplace_back();
    return slots[idx++];
  }
};

// Reads canonical VAE tensors in `dtype` on `device`, naming the tensor when it is missing.
struct WeightReader {
  const TensorMap& map;
  at::Device device;
  at::ScalarType dtype = at::kFloat;
  at::Tensor operator()(const std::string& name) const;
};

// CausalConv3d: zero padding of 2 * pad_t frames in front (none behind), symmetric spatially.
struct CausalConv {
  at::Tensor weight, bias;  // weight: [out, in, kt, kh, kw]
  int64_t pad_t = 0, pad_h = 0, pad_w = 0, stride_t = 1;
  static CausalConv load(const WeightReader& w, const std::string& prefix, int64_t padding, int64_t stride_t = 1);
  // x: [B, in, T, H, W]; `past` ([B, in, P, H, W], may be undefined) replaces P of the zero frames.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& past = at::Tensor()) const;
};

// A causal convolution fed chunk by chunk: uses and updates the next cache slot.
at::Tensor cached_conv(const CausalConv& c, const at::Tensor& x, FeatCache& cache);

// RMS_norm over channels (dim 1): x / max(|x|, 1e-12) * sqrt(C) * gamma.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& gamma);

struct ResidualBlock {
  at::Tensor gamma1, gamma2;  // [C, 1, 1, 1]
  CausalConv conv1, conv2;    // 3x3x3
  bool has_shortcut = false;  // 1x1x1 conv when in != out
  CausalConv shortcut;
  static ResidualBlock load(const WeightReader& w, const std::string& prefix, int64_t in, int64_t out);
  at::Tensor forward(const at::Tensor& x, FeatCache& cache) const;  // [B, in, T, H, W] -> [B, out, T, H, W]
};

// Single-head self-attention within each frame (no mixing across time).
struct AttentionBlock {
  at::Tensor gamma;            // [C, 1, 1]
  at::Tensor qkv_w, qkv_b;     // [3C, C, 1, 1]
  at::Tensor proj_w, proj_b;   // [C, C, 1, 1]
  static AttentionBlock load(const WeightReader& w, const std::string& prefix);
  at::Tensor forward(const at::Tensor& x) const;  // [B, C, T, H, W] -> same
};

enum class ResampleMode { Upsample2d, Upsample3d, Downsample2d, Downsample3d };

// Spatial x2 up/down sampling per frame, with a temporal x2 step in the 3d modes:
//   upsample3d   — time_conv gives 2C channels that become two frames each; the very first
//                  chunk is passed through untouched, so the first latent frame stays one frame.
//   downsample3d — time_conv (kernel 3, stride 2, no padding) over the previous chunk's last
//                  frame and this chunk; the very first chunk is passed through untouched.
struct Resample {
  ResampleMode mode = ResampleMode::Upsample2d;
  at::Tensor weight, bias;  // the 3x3 Conv2d: up [C/2, C, 3, 3], down [C, C, 3, 3]
  CausalConv time_conv;     // 3d modes: [2C, C, 3, 1, 1] up, [C, C, 3, 1, 1] down
  static Resample load(const WeightReader& w, const std::string& prefix, ResampleMode mode);
  at::Tensor forward(const at::Tensor& x, FeatCache& cache) const;
};

}  // namespace wan::vae

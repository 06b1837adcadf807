// Encoder3d / Decoder3d: the same construction loops as the reference (and as vae_specs in
// arch.cpp), so the numbered canonical names line up block for block.
#include "models/vae_net.h"

#include <string>

namespace wan::vae {

Middle Middle::load(const WeightReader& w, const std::string& prefix, int64_t dim) {
  Middle m;
  m.res1 = ResidualBlock::load(w, prefix + ".0", dim, dim);
  m.attn = AttentionBlock::load(w, prefix + ".1");
  m.res2 = ResidualBlock::load(w, prefix + ".2", dim, dim);
  return m;
}

at::Tensor Middle::forward(const at::Tensor& x, FeatCache& cache) const {
  return res2.forward(attn.forward(res1.forward(x, cache)), cache);
}

namespace {
at::Tensor run_levels(const std::vector<Level>& levels, at::Tensor x, FeatCache& cache) {
  for (const Level& l : levels) {
    for (const ResidualBlock& b : l.blocks) x = b.forward(x, cache);
    if (l.resample) x = l.resample->forward(x, cache);
  }
  return x;
}
}  // namespace

Encoder Encoder::load(const WeightReader& w, const VaeArch& a) {
  Encoder e;
  const size_t n = a.dim_mult.size();
  std::vector<int64_t> dims{a.dim};  // dim * ([1] + dim_mult)
  for (int64_t m : a.dim_mult) dims.push_back(a.dim * m);
  e.conv_in = CausalConv::load(w, "encoder.conv1", 1);
  int idx = 0;
  for (size_t i = 0; i < n; ++i) {
    Level l;
    int64_t in = dims[i];
    for (int64_t r = 0; r < a.num_res_blocks; ++r, in = dims[i + 1])
      l.blocks.push_back(ResidualBlock::load(w, "encoder.downsamples." + std::to_string(idx++), in, dims[i + 1]));
    if (i + 1 != n)
      l.resample = Resample::load(w, "encoder.downsamples." + std::to_string(idx++),
                                  a.temporal_downsample[i] ? ResampleMode::Downsample3d : ResampleMode::Downsample2d);
    e.levels.push_back(std::move(l));
  }
  e.middle = Middle::load(w, "encoder.middle", dims.back());
  e.head_gamma = w("encoder.head.0.gamma");
  e.head_conv = CausalConv::load(w, "encoder.head.2", 1);
  return e;
}

at::Tensor Encoder::forward(const at::Tensor& in, FeatCache& cache) const {
  at::Tensor x = cached_conv(conv_in, in, cache);
  x = run_levels(levels, x, cache);
  x = middle.forward(x, cache);
  return cached_conv(head_conv, at::silu(rms_norm(x, head_gamma)), cache);
}

Decoder Decoder::load(const WeightReader& w, const VaeArch& a) {
  Decoder d;
  const size_t n = a.dim_mult.size();
  std::vector<int64_t> dims{a.dim * a.dim_mult.back()};  // dim * ([dim_mult[-1]] + reversed(dim_mult))
  for (size_t i = n; i-- > 0;) dims.push_back(a.dim * a.dim_mult[i]);
  d.conv_in = CausalConv::load(w, "decoder.conv1", 1);
  d.middle = Middle::load(w, "decoder.middle", dims[0]);
  int idx = 0;
  for (size_t i = 0; i < n; ++i) {
    Level l;
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];  // every upsampling conv halves the channels
    for (int64_t r = 0; r < a.num_res_blocks + 1; ++r, in = dims[i + 1])
      l.blocks.push_back(ResidualBlock::load(w, "decoder.upsamples." + std::to_string(idx++), in, dims[i + 1]));
    if (i + 1 != n) {
      // Temporal upsampling mirrors the encoder's downsampling: temperal_upsample = reversed.
      const bool temporal = a.temporal_downsample[n - 2 - i];
      l.resample = Resample::load(w, "decoder.upsamples." + std::to_string(idx++),
                                  temporal ? ResampleMode::Upsample3d : ResampleMode::Upsample2d);
    }
    d.levels.push_back(std::move(l));
  }
  d.head_gamma = w("decoder.head.0.gamma");
  d.head_conv = CausalConv::load(w, "decoder.head.2", 1);
  return d;
}

at::Tensor Decoder::forward(const at::Tensor& in, FeatCache& cache) const {
  at::Tensor x = cached_conv(conv_in, in, cache);
  x = middle.forward(x, cache);
  x = run_levels(levels, x, cache);
  return cached_conv(head_conv, at::silu(rms_norm(x, head_gamma)), cache);
}

}  // namespace wan::vae

#include "tools/model_flops.h"

#include <vector>

namespace wan {

// DiT, tokens L, text length Lc, model dim D, FFN dim F (a multiply-add = 2 FLOPs):
//   per block  self-attn  q, k, v, o projections        8 L D^2
//                         q k^T and p v                  4 L^2 D
//              cross-attn q, o on the video tokens       4 L D^2
//                         k, v on the text               4 Lc D^2
//                         q k^T and p v                  4 L Lc D
//              FFN        D -> F -> D                    4 L D F
//   once       patch embedding (Conv3d)                  2 L D in_dim pt ph pw
//              text embedding (text_dim -> D -> D)       2 Lc (text_dim D + D^2)
//              time embedding + projection               2 (freq_dim D + D^2 + 6 D^2)
//              head                                      2 L D out_dim pt ph pw
double dit_flops(const DitArch& a, int64_t tokens, int64_t text_len) {
  const double L = tokens, Lc = text_len, D = a.dim, F = a.ffn_dim;
  const double patch = a.patch[0] * a.patch[1] * a.patch[2];
  const double block = 8 * L * D * D + 4 * L * L * D + 4 * L * D * D + 4 * Lc * D * D + 4 * L * Lc * D + 4 * L * D * F;
  const double once = 2 * L * D * a.in_dim * patch + 2 * Lc * (a.text_dim * D + D * D) +
                      2 * (a.freq_dim * D + D * D + 6 * D * D) + 2 * L * D * a.out_dim * patch;
  return a.num_layers * block + once;
}

// VAE decode of z [z_dim, f, h, w]: the post-quant 1x1x1 conv over all f frames, then Decoder3d
// once per latent frame (chunk c). Every conv counts 2 * (output voxels) * C_in * C_out * k, k
// the kernel volume; causal padding keeps outputs the size of inputs. Per chunk, at t frames
// (1 at the start) and h x w pixels:
//   conv1 z_dim -> d0 (k 27); middle: residual, attention (qkv and proj 1x1 convs, and
//   4 (h w)^2 d0 per frame), residual; per level i: num_res_blocks + 1 residual blocks (two k-27
//   convs, a 1x1 shortcut when C_in != C_out; C_in is halved after a resample), then (except at
//   the last level) the resample: the temporal conv C -> 2C (k 3) doubling t, skipped on the first
//   chunk (DiffSynth's 'Rep'), where time is upsampled; then 2x nearest upsampling and a 2-D
//   conv C -> C/2 (k 9) per frame; head conv dims.back() -> 3 (k 27).
double vae_decode_flops(const VaeArch& a, int64_t f, int64_t h, int64_t w) {
  const double z = a.z_dim;
  double flops = 2.0 * f * h * w * z * z;
  std::vector<double> dims{double(a.dim * a.dim_mult.back())};
  for (auto it = a.dim_mult.rbegin(); it != a.dim_mult.rend(); ++it) dims.push_back(double(a.dim * *it));
  std::vector<bool> temporal_up(a.temporal_downsample.rbegin(), a.temporal_downsample.rend());
  const size_t levels = a.dim_mult.size();
  for (int64_t c = 0; c < f; ++c) {
    double t = 1, hh = h, ww = w;
    auto conv = [&](double cin, double cout, double k) { flops += 2 * t * hh * ww * cin * cout * k; };
    auto res = [&](double cin, double cout) {
      conv(cin, cout, 27);
      conv(cout, cout, 27);
      if (cin != cout) conv(cin, cout, 1);
    };
    conv(z, dims[0], 27);
    res(dims[0], dims[0]);
    conv(dims[0], 3 * dims[0], 1);
    conv(dims[0], dims[0], 1);
    flops += 4 * t * (hh * ww) * (hh * ww) * dims[0];
    res(dims[0], dims[0]);
    for (size_t i = 0; i < levels; ++i) {
      double cin = i >= 1 ? dims[i] / 2 : dims[i], cout = dims[i + 1];
      for (int64_t j = 0; j <= a.num_res_blocks; ++j) res(cin, cout), cin = cout;
      if (i + 1 == levels) break;
      if (i < temporal_up.size() && temporal_up[i] && c > 0) {
        conv(cout, 2 * cout, 3);
        t *= 2;
      }
      hh *= 2, ww *= 2;
      conv(cout, cout / 2, 9);
    }
    conv(dims.back(), 3, 27);
  }
  return flops;
}

// T5 layer, L tokens, D = dim, Da = dim_attn, F = dim_ffn:
//   q, k, v, o projections 8 L D Da; q k^T and p v 4 L^2 Da; gated FFN (gate, fc1, fc2) 6 L D F.
// The token embedding is a lookup (0 FLOPs).
double t5_flops(const T5Arch& a, int64_t tokens) {
  const double L = tokens, D = a.dim, Da = a.dim_attn, F = a.dim_ffn;
  return a.num_layers * (8 * L * D * Da + 4 * L * L * Da + 6 * L * D * F);
}

}  // namespace wan

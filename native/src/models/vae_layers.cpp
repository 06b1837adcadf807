// Wan2.1 VAE building blocks; each mirrors the DiffSynth module of the same name, op for op, so
// float32 results agree to rounding.
#include "models/vae_layers.h"

#include "models/placement.h"

#include <cmath>

#include "common/error.h"

namespace wan::vae {

namespace {
constexpr int64_t kCacheT = 2;  // frames a causal 3x3x3 convolution needs from the past

// [B, C, T, H, W] <-> [B*T, C, H, W] (DiffSynth: rearrange 'b c t h w -> (b t) c h w').
at::Tensor frames_to_batch(const at::Tensor& x) {
  return x.permute({0, 2, 1, 3, 4}).reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}
at::Tensor batch_to_frames(const at::Tensor& x, int64_t b, int64_t t) {
  return x.reshape({b, t, x.size(1), x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4}).contiguous();
}
}  // namespace

at::Tensor WeightReader::operator()(const std::string& name) const {
  auto it = map.find(name);
  if (it == map.end()) fail("VAE tensor ", name, " is missing");
  return place(it->second, {device, dtype});
}

CausalConv CausalConv::load(const WeightReader& w, const std::string& prefix, int64_t padding, int64_t stride_t) {
  CausalConv c;
  c.weight = w(prefix + ".weight");
  c.bias = w(prefix + ".bias");
  c.pad_t = 2 * padding;
  // Temporal-only kernels (kt x 1 x 1) get no spatial padding.
  c.pad_h = c.weight.size(3) > 1 ? padding : 0;
  c.pad_w = c.weight.size(4) > 1 ? padding : 0;
  c.stride_t = stride_t;
  return c;
}

at::Tensor CausalConv::forward(const at::Tensor& x, const at::Tensor& past) const {
  at::Tensor in = x;
  int64_t front = pad_t;
  if (past.defined() && pad_t > 0) {
    in = at::cat({past, x}, 2);
    front -= past.size(2);
  }
  // F.pad order: (w_left, w_right, h_top, h_bottom, t_front, t_back)
  if (front > 0 || pad_h > 0 || pad_w > 0) in = at::constant_pad_nd(in, {pad_w, pad_w, pad_h, pad_h, front, 0}, 0);
  return at::conv3d(in, weight, bias, {stride_t, 1, 1});
}

at::Tensor cached_conv(const CausalConv& c, const at::Tensor& x, FeatCache& cache) {
  CacheSlot& slot = cache.next();
  // x: [B, C, T, H, W]; keep the last kCacheT frames of the stream (this chunk's, topped up with
  // the previous chunk's last frame when the chunk is a single frame).
  const int64_t t = x.size(2);
  at::Tensor keep = x.slice(2, std::max<int64_t>(0, t - kCacheT)).clone();
  if (keep.size(2) < kCacheT && slot.frames.defined())
    keep = at::cat({slot.frames.slice(2, slot.frames.size(2) - 1), keep}, 2);
  at::Tensor y = c.forward(x, slot.frames);
  slot.frames = keep;
  slot.seen = true;
  return y;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& gamma) {
  // F.normalize(x, dim=1) * sqrt(C) * gamma, in that order.
  const double scale = std::sqrt(double(x.size(1)));
  at::Tensor denom = x.norm(2, {1}, true).clamp_min(1e-12);
  return (x / denom) * scale * gamma;
}

ResidualBlock ResidualBlock::load(const WeightReader& w, const std::string& prefix, int64_t in, int64_t out) {
  ResidualBlock r;
  r.gamma1 = w(prefix + ".residual.0.gamma");
  r.conv1 = CausalConv::load(w, prefix + ".residual.2", 1);
  r.gamma2 = w(prefix + ".residual.3.gamma");
  r.conv2 = CausalConv::load(w, prefix + ".residual.6", 1);
  r.has_shortcut = in != out;
  if (r.has_shortcut) r.shortcut = CausalConv::load(w, prefix + ".shortcut", 0);
  return r;
}

at::Tensor ResidualBlock::forward(const at::Tensor& x, FeatCache& cache) const {
  at::Tensor h = has_shortcut ? shortcut.forward(x) : x;
  at::Tensor y = at::silu(rms_norm(x, gamma1));
  y = cached_conv(conv1, y, cache);
  y = at::silu(rms_norm(y, gamma2));  // dropout: identity at inference
  y = cached_conv(conv2, y, cache);
  return y + h;
}

AttentionBlock AttentionBlock::load(const WeightReader& w, const std::string& prefix) {
  AttentionBlock a;
  a.gamma = w(prefix + ".norm.gamma");
  a.qkv_w = w(prefix + ".to_qkv.weight");
  a.qkv_b = w(prefix + ".to_qkv.bias");
  a.proj_w = w(prefix + ".proj.weight");
  a.proj_b = w(prefix + ".proj.bias");
  return a;
}

at::Tensor AttentionBlock::forward(const at::Tensor& x) const {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  at::Tensor f = rms_norm(frames_to_batch(x), gamma);  // [BT, C, H, W]
  // qkv: [BT, 3C, H, W] -> [BT, 1, HW, 3C] -> q, k, v: [BT, 1, HW, C]
  at::Tensor qkv = at::conv2d(f, qkv_w, qkv_b).reshape({b * t, 1, 3 * c, h * w}).permute({0, 1, 3, 2}).contiguous();
  std::vector<at::Tensor> q_k_v = qkv.chunk(3, -1);
  // The math form of scaled_dot_product_attention: softmax(q k^T / sqrt(C)) v.
  at::Tensor s = at::matmul(q_k_v[0], q_k_v[1].transpose(-2, -1)) * (1.0 / std::sqrt(double(c)));
  at::Tensor o = at::matmul(at::softmax(s, -1), q_k_v[2]);  // [BT, 1, HW, C]
  o = o.squeeze(1).permute({0, 2, 1}).reshape({b * t, c, h, w});
  o = at::conv2d(o, proj_w, proj_b);
  return batch_to_frames(o, b, t) + x;
}

Resample Resample::load(const WeightReader& w, const std::string& prefix, ResampleMode mode) {
  Resample r;
  r.mode = mode;
  r.weight = w(prefix + ".resample.1.weight");
  r.bias = w(prefix + ".resample.1.bias");
  if (mode == ResampleMode::Upsample3d) r.time_conv = CausalConv::load(w, prefix + ".time_conv", 1);
  if (mode == ResampleMode::Downsample3d) r.time_conv = CausalConv::load(w, prefix + ".time_conv", 0, 2);
  return r;
}

at::Tensor Resample::forward(const at::Tensor& in, FeatCache& cache) const {
  at::Tensor x = in;
  const int64_t b = x.size(0), c = x.size(1);
  if (mode == ResampleMode::Upsample3d) {
    CacheSlot& slot = cache.next();
    if (!slot.seen) {
      slot.seen = slot.rep = true;  // first chunk: no temporal upsampling
    } else {
      const int64_t t = x.size(2);
      at::Tensor keep = x.slice(2, std::max<int64_t>(0, t - kCacheT)).clone();
      // A single-frame chunk keeps a zero frame in front after the first chunk (the first
      // chunk's frame never enters the temporal convolution), else the previous last frame.
      if (keep.size(2) < kCacheT)
        keep = at::cat({slot.rep ? at::zeros_like(keep) : slot.frames.slice(2, slot.frames.size(2) - 1), keep}, 2);
      at::Tensor y = time_conv.forward(x, slot.rep ? at::Tensor() : slot.frames);  // [B, 2C, T, H, W]
      slot.frames = keep;
      slot.rep = false;
      // Channel halves are the even and odd output frames: [B, 2, C, T, H, W] -> [B, C, 2T, H, W].
      y = y.reshape({b, 2, c, t, y.size(3), y.size(4)});
      x = at::stack({y.select(1, 0), y.select(1, 1)}, 3).reshape({b, c, 2 * t, y.size(4), y.size(5)});
    }
  }
  const int64_t t = x.size(2);
  at::Tensor f = frames_to_batch(x);  // [BT, C, H, W]
  if (mode == ResampleMode::Upsample2d || mode == ResampleMode::Upsample3d) {
    // nearest(-exact) x2: every pixel becomes a 2x2 block.
    const int64_t n = f.size(0), h = f.size(2), w = f.size(3);
    f = f.reshape({n, c, h, 1, w, 1}).expand({n, c, h, 2, w, 2}).reshape({n, c, 2 * h, 2 * w});
    f = at::conv2d(f, weight, bias, {1, 1}, {1, 1});
  } else {
    f = at::constant_pad_nd(f, {0, 1, 0, 1}, 0);  // ZeroPad2d((0, 1, 0, 1)): right and bottom
    f = at::conv2d(f, weight, bias, {2, 2});
  }
  x = batch_to_frames(f, b, t);
  if (mode == ResampleMode::Downsample3d) {
    CacheSlot& slot = cache.next();
    if (!slot.seen) {
      slot.seen = true;  // first chunk: no temporal downsampling
      slot.frames = x.slice(2, t - 1).clone();
    } else {
      at::Tensor keep = x.slice(2, t - 1).clone();
      x = time_conv.forward(at::cat({slot.frames, x}, 2));  // kernel 3, stride 2: 1 + T frames -> T / 2
      slot.frames = keep;
    }
  }
  return x;
}

}  // namespace wan::vae

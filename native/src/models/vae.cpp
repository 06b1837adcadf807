// WanVAE: input checks, latent normalisation, time chunking and tiling around the networks.
#include "models/vae.h"

#include <c10/core/GradMode.h>

#include "common/error.h"
#include "common/shape_str.h"
#include "models/latent_grid.h"
#include "models/vae_tiles.h"

namespace wan {

namespace {
constexpr int64_t kScale = 8;  // spatial down/up-sampling factor (3 levels of x2)

// Per-channel statistics of the Wan2.1 VAE's latents (WanVideoVAE.mean / .std): the DiT works on
// (mu - mean) / std.
constexpr float kMean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                             0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
constexpr float kStd[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                            3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

void check_tiles(const char* what, std::array<int64_t, 2> size, std::array<int64_t, 2> stride) {
  for (int i = 0; i < 2; ++i)
    if (size[i] <= 0 || stride[i] <= 0 || stride[i] > size[i])
      fail(what, ": tile_size (", size[0], ", ", size[1], ") and tile_stride (", stride[0], ", ", stride[1],
           ") must be positive with stride <= size (else tiles leave gaps)");
}
}  // namespace

WanVAE::WanVAE(const TensorMap& weights, const VaeArch& arch, const Placement& p)
    : arch_(arch), device_(p.device), dtype_(p.dtype) {
  const at::Device device = p.device;
  check_specs(weights, vae_specs(arch), "VAE weights");
  if (arch.z_dim != 16)
    fail("VAE: z_dim is ", arch.z_dim, " but the Wan2.1 latent statistics (mean/std) have 16 channels");
  vae::WeightReader w{weights, device, dtype_};
  encoder_ = vae::Encoder::load(w, arch);
  decoder_ = vae::Decoder::load(w, arch);
  quant_conv_ = vae::CausalConv::load(w, "conv1", 0);
  post_quant_conv_ = vae::CausalConv::load(w, "conv2", 0);
  mean_ = at::tensor(at::ArrayRef<float>(kMean, 16)).view({1, 16, 1, 1, 1}).to(device);
  // DiffSynth keeps scale = [mean, 1 / std] and divides / multiplies by 1 / std: same here.
  inv_std_ = (1.0 / at::tensor(at::ArrayRef<float>(kStd, 16))).view({1, 16, 1, 1, 1}).to(device);
}

at::Tensor WanVAE::decode_plane(const at::Tensor& z, int& done, int total, const VaeProgress& progress) const {
  // z: [z_dim, f, h, w] -> x: [1, z_dim, f, h, w], denormalised
  at::Tensor x = (z.unsqueeze(0).to(device_, at::kFloat) / inv_std_ + mean_).to(dtype_);
  x = post_quant_conv_.forward(x);
  vae::FeatCache cache;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < x.size(2); ++i) {
    cache.start_chunk();
    out.push_back(decoder_.forward(x.slice(2, i, i + 1), cache).to(at::kCPU, at::kFloat));  // [1, 3, 1 or 4, 8h, 8w]
    if (progress) progress(++done, total);
  }
  return at::cat(out, 2).squeeze(0);  // [3, 4(f-1)+1, 8h, 8w]
}

at::Tensor WanVAE::encode_plane(const at::Tensor& video, int& done, int total, const VaeProgress& progress) const {
  at::Tensor x = video.unsqueeze(0).to(device_, dtype_);  // [1, 3, F, H, W]
  vae::FeatCache cache;
  std::vector<at::Tensor> out;
  // Chunks: frame 0 alone, then frames 4i-3 .. 4i; each gives one latent frame.
  for (int64_t t0 = 0; t0 < x.size(2); t0 = t0 == 0 ? 1 : t0 + 4) {
    cache.start_chunk();
    out.push_back(encoder_.forward(x.slice(2, t0, t0 == 0 ? 1 : t0 + 4), cache));
    if (progress) progress(++done, total);
  }
  at::Tensor mu = quant_conv_.forward(at::cat(out, 2)).chunk(2, 1)[0];  // drop the log-variance
  return ((mu.to(at::kFloat) - mean_) * inv_std_).to(at::kCPU).squeeze(0);  // [z_dim, f, h, w]
}

at::Tensor WanVAE::decode(const at::Tensor& z_in, const VaeDecodeOptions& o) const {
  if (z_in.dim() != 4 || z_in.size(0) != arch_.z_dim || z_in.size(1) < 1 || z_in.size(2) < 1 || z_in.size(3) < 1)
    fail("VAE decode: latents must be [", arch_.z_dim, ", frames, height, width] but are ", shape_str(z_in.sizes()));
  if (!at::isFloatingType(z_in.scalar_type())) fail("VAE decode: latents must be floating point, not ", z_in.scalar_type());
  if (o.tiled) check_tiles("VAE decode", o.tile_size, o.tile_stride);
  c10::NoGradGuard no_grad;
  const at::Tensor z = z_in.to(at::kFloat);
  const int64_t f = z.size(1), h = z.size(2), w = z.size(3);
  int done = 0;
  if (!o.tiled) return decode_plane(z, done, int(f), o.progress).clamp_(-1, 1);

  const std::vector<vae::Tile> tiles = vae::plan_tiles(h, w, o.tile_size, o.tile_stride);
  const int total = int(tiles.size() * f);
  const std::array<int64_t, 2> border{(o.tile_size[0] - o.tile_stride[0]) * kScale,
                                      (o.tile_size[1] - o.tile_stride[1]) * kScale};
  // Blended on the CPU like DiffSynth (data_device = "cpu"): weighted sum, then / sum of weights.
  at::Tensor values = at::zeros({3, 4 * (f - 1) + 1, h * kScale, w * kScale}, at::kFloat);
  at::Tensor weight = at::zeros({1, 4 * (f - 1) + 1, h * kScale, w * kScale}, at::kFloat);
  for (const vae::Tile& t : tiles) {
    at::Tensor part = z.slice(2, t.h0, t.h1).slice(3, t.w0, t.w1);
    at::Tensor video = decode_plane(part, done, total, o.progress);  // [3, T, 8th, 8tw]
    at::Tensor mask = vae::tile_mask(t, video.size(2), video.size(3), border)[0];
    auto region = [&](at::Tensor& a) {
      return a.slice(2, t.h0 * kScale, t.h0 * kScale + video.size(2)).slice(3, t.w0 * kScale, t.w0 * kScale + video.size(3));
    };
    region(values).add_(video * mask);
    region(weight).add_(mask);
  }
  return (values / weight).clamp_(-1, 1);
}

at::Tensor WanVAE::encode(const at::Tensor& video_in, const VaeEncodeOptions& o) const {
  if (video_in.dim() != 4 || video_in.size(0) != 3)
    fail("VAE encode: video must be [3, frames, height, width] but is ", shape_str(video_in.sizes()));
  const int64_t frames = video_in.size(1), height = video_in.size(2), width = video_in.size(3);
  if (!valid_frame_count(frames))
    fail("VAE encode: the video has ", frames, " frames; the Wan VAE needs 4k+1 (1, 5, 9, ..., 81)");
  if (height < kScale || width < kScale || height % kScale != 0 || width % kScale != 0)
    fail("VAE encode: video height and width must be positive multiples of 8, not ", height, " x ", width);
  if (!at::isFloatingType(video_in.scalar_type()))
    fail("VAE encode: video must be floating point, not ", video_in.scalar_type());
  if (o.tiled) check_tiles("VAE encode", o.tile_size, o.tile_stride);
  c10::NoGradGuard no_grad;
  const at::Tensor video = video_in.to(at::kFloat);
  const int64_t chunks = 1 + (frames - 1) / 4;
  int done = 0;
  if (!o.tiled) return encode_plane(video, done, int(chunks), o.progress);

  // DiffSynth takes tile sizes in latents and tiles the video in pixels (x 8).
  const std::array<int64_t, 2> size{o.tile_size[0] * kScale, o.tile_size[1] * kScale};
  const std::array<int64_t, 2> stride{o.tile_stride[0] * kScale, o.tile_stride[1] * kScale};
  const std::vector<vae::Tile> tiles = vae::plan_tiles(height, width, size, stride);
  const int total = int(tiles.size() * chunks);
  const std::array<int64_t, 2> border{o.tile_size[0] - o.tile_stride[0], o.tile_size[1] - o.tile_stride[1]};
  at::Tensor values = at::zeros({arch_.z_dim, chunks, height / kScale, width / kScale}, at::kFloat);
  at::Tensor weight = at::zeros({1, chunks, height / kScale, width / kScale}, at::kFloat);
  for (const vae::Tile& t : tiles) {
    at::Tensor part = video.slice(2, t.h0, t.h1).slice(3, t.w0, t.w1);
    at::Tensor z = encode_plane(part, done, total, o.progress);  // [z_dim, f, th/8, tw/8]
    at::Tensor mask = vae::tile_mask(t, z.size(2), z.size(3), border)[0];
    auto region = [&](at::Tensor& a) {
      return a.slice(2, t.h0 / kScale, t.h0 / kScale + z.size(2)).slice(3, t.w0 / kScale, t.w0 / kScale + z.size(3));
    };
    region(values).add_(z * mask);
    region(weight).add_(mask);
  }
  return values / weight;
}

}  // namespace wan

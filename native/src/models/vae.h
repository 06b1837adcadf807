// The Wan2.1 VAE: latents <-> video, numerically as DiffSynth-Studio's WanVideoVAE
// (diffsynth/models/wan_video_vae.py) in float32.
//
//   decode: z [16, f, h, w] (normalised latents, as the DiT produces them)
//           -> video [3, 4(f-1)+1, 8h, 8w], clamped to [-1, 1]
//   encode: video [3, 4k+1, H, W] in [-1, 1], H and W multiples of 8
//           -> z [16, k+1, H/8, W/8] (the posterior mean, normalised)
//
// Time is causal and chunked as DiffSynth does it: decode runs one latent frame at a time (the
// first becomes 1 video frame, every later one 4); encode runs the first frame, then chunks of 4.
// Tiled mode splits the plane into overlapping tiles, runs each tile through the whole video and
// blends the overlaps with linear ramps (DiffSynth's tiled_decode / tiled_encode).
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <functional>

#include "common/dtype.h"
#include "checkpoint/arch.h"
#include "models/placement.h"
#include "models/vae_net.h"

namespace wan {

// Called after every chunk: done / total chunks, over all tiles (total = tiles x chunks).
using VaeProgress = std::function<void(int done, int total)>;

// Tile settings are in latent units (h, w) for both directions; the defaults are the Wan
// pipeline's (WanVideoPipeline.__call__: tiled=True, tile_size (30, 52), tile_stride (15, 26)).
// A plane that fits in one tile decodes exactly as untiled.
struct VaeDecodeOptions {
  bool tiled = true;
  std::array<int64_t, 2> tile_size{30, 52};
  std::array<int64_t, 2> tile_stride{15, 26};
  VaeProgress progress;
};
struct VaeEncodeOptions {
  bool tiled = true;
  std::array<int64_t, 2> tile_size{30, 52};
  std::array<int64_t, 2> tile_stride{15, 26};
  VaeProgress progress;
};

class WanVAE {
 public:
  // `weights`: canonical VAE tensors (checked against `arch`), converted to the placement's dtype
  // on its device; the activations run in that dtype, the latent statistics in float32.
  WanVAE(const TensorMap& weights, const VaeArch& arch, const Placement& placement = {});

  // z: [z_dim, f, h, w] float -> [3, 4(f-1)+1, 8h, 8w] float32 on the CPU, in [-1, 1].
  at::Tensor decode(const at::Tensor& z, const VaeDecodeOptions& o = {}) const;
  // video: [3, F, H, W] float in [-1, 1], F = 4k+1, H, W multiples of 8
  //   -> [z_dim, k+1, H/8, W/8] float32 on the CPU.
  at::Tensor encode(const at::Tensor& video, const VaeEncodeOptions& o = {}) const;

  const VaeArch& arch() const { return arch_; }

 private:
  // One tile (or the whole plane) through the networks, chunk by chunk; `done` counts chunks.
  at::Tensor decode_plane(const at::Tensor& z, int& done, int total, const VaeProgress& progress) const;
  at::Tensor encode_plane(const at::Tensor& video, int& done, int total, const VaeProgress& progress) const;

  VaeArch arch_;
  at::Device device_;
  at::ScalarType dtype_;
  vae::Encoder encoder_;
  vae::Decoder decoder_;
  vae::CausalConv quant_conv_;       // conv1: 2 z_dim -> 2 z_dim, after the encoder
  vae::CausalConv post_quant_conv_;  // conv2: z_dim -> z_dim, before the decoder
  at::Tensor mean_, inv_std_;        // [1, z_dim, 1, 1, 1]: latent statistics of the Wan2.1 VAE
};

}  // namespace wan

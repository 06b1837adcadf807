// The latent grid the Wan2.1 VAE maps a video to, and the DiT tokens over it. The VAE keeps the
// first frame alone and folds each further 4 frames into one latent frame (so videos have
// 4k + 1 frames), and 8 x 8 pixels into one latent pixel: a video [3, num_frames, height, width]
// is latents [z_dim, frames, height, width] with the sizes below. The DiT then cuts the latents
// into patches (t, h, w) = DitArch::patch, one token each.
#pragma once
#include <array>
#include <cstdint>

namespace wan {

struct LatentGrid {
  int64_t frames = 0, height = 0, width = 0;

  // Tokens of the DiT over this grid: each axis divided by its patch size.
  int64_t tokens(const std::array<int64_t, 3>& patch) const {
    return (frames / patch[0]) * (height / patch[1]) * (width / patch[2]);
  }
};

// Whether a video of `num_frames` frames maps to whole latent frames: 4k + 1 (1, 5, 9, ..., 81).
inline bool valid_frame_count(int64_t num_frames) { return num_frames >= 1 && (num_frames - 1) % 4 == 0; }

// The VAE's stride (frames, height, width): 4 frames after the first, 8 x 8 pixels per latent.
constexpr std::array<int64_t, 3> kVaeStride{4, 8, 8};

inline LatentGrid latent_grid(int64_t num_frames, int64_t height, int64_t width) {
  return {(num_frames - 1) / kVaeStride[0] + 1, height / kVaeStride[1], width / kVaeStride[2]};
}

}  // namespace wan

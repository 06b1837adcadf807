#include "models/vae_tiles.h"

#include <algorithm>

namespace wan::vae {

std::vector<Tile> plan_tiles(int64_t height, int64_t width, std::array<int64_t, 2> size,
                             std::array<int64_t, 2> stride) {
  std::vector<Tile> tiles;
  for (int64_t h = 0; h < height; h += stride[0]) {
    if (h - stride[0] >= 0 && h - stride[0] + size[0] >= height) continue;
    for (int64_t w = 0; w < width; w += stride[1]) {
      if (w - stride[1] >= 0 && w - stride[1] + size[1] >= width) continue;
      Tile t;
      t.h0 = h, t.h1 = std::min(h + size[0], height), t.w0 = w, t.w1 = std::min(w + size[1], width);
      t.top = h == 0, t.bottom = h + size[0] >= height, t.left = w == 0, t.right = w + size[1] >= width;
      tiles.push_back(t);
    }
  }
  return tiles;
}

namespace {
// DiffSynth's build_1d_mask: the far ramp is written last, so it wins where the two overlap.
at::Tensor ramp_1d(int64_t length, bool near_edge, bool far_edge, int64_t border) {
  at::Tensor x = at::ones({length}, at::kFloat);
  const int64_t b = std::min(border, length);
  if (b <= 0) return x;
  at::Tensor ramp = at::arange(1, b + 1, at::kFloat) / double(border);  // (i + 1) / border
  if (!near_edge) x.slice(0, 0, b).copy_(ramp);
  if (!far_edge) x.slice(0, length - b).copy_(ramp.flip({0}));
  return x;
}
}  // namespace

at::Tensor tile_mask(const Tile& t, int64_t height, int64_t width, std::array<int64_t, 2> border) {
  at::Tensor h = ramp_1d(height, t.top, t.bottom, border[0]).view({height, 1}).expand({height, width});
  at::Tensor w = ramp_1d(width, t.left, t.right, border[1]).view({1, width}).expand({height, width});
  return at::min(h, w).view({1, 1, 1, height, width});
}

}  // namespace wan::vae

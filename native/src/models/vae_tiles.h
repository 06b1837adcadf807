// Spatial tiling for the VAE (DiffSynth's WanVideoVAE.tiled_decode / tiled_encode): which tiles,
// and the weights that blend their overlaps.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <vector>

namespace wan::vae {

// A tile [h0, h1) x [w0, w1) of the input plane, cut at the plane's edge.
struct Tile {
  int64_t h0, h1, w0, w1;
  bool top, bottom, left, right;  // touches that edge of the plane: no blending ramp there
};

// Tiles start every `stride` and span `size`; a start is skipped when the previous tile already
// reaches the far edge. size and stride: (h, w) in the plane's units.
std::vector<Tile> plan_tiles(int64_t height, int64_t width, std::array<int64_t, 2> size,
                             std::array<int64_t, 2> stride);

// The blending weight of one tile's output, [1, 1, 1, H, W] float32: ones, with linear ramps
// (1/b, 2/b, ..., 1) of width `border` (h, w) along every side that is not a plane edge; the
// two directions combine by min.
at::Tensor tile_mask(const Tile& t, int64_t height, int64_t width, std::array<int64_t, 2> border);

}  // namespace wan::vae

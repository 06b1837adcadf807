// 3-D rotary position embedding of the Wan DiT (DiffSynth precompute_freqs_cis_3d / rope_apply).
//
// head_dim d is split into three parts rotated by the token's frame, row and column index:
// frame gets d - 2*(d/3) dims, height and width d/3 each (128 -> 44 + 42 + 42). Each part of n
// dims is n/2 (x[2j], x[2j+1]) pairs rotated by the angle pos * theta^(-2j/n). DiffSynth does this
// as a complex128 multiply; here it is the same product written on real pairs:
//   (a + ib)(c + is) = (a c - b s) + i(a s + b c).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace wan {

// Per token: cos and sin of the rotation angle of every pair of a head.
struct RopeTable {
  at::Tensor cos, sin;  // [L, d/2], float64 unless cast; row i is token i of the (f, h, w) grid
  // Optional: cos + i sin as complex64 [L, d/2] (rope_complex). When set, rope_apply takes the
  // reduced-precision path: one float32 complex multiply instead of six real passes.
  at::Tensor freqs;
  int64_t size() const { return cos.size(0); }
};

// The table with `freqs` set, on `device` (cos/sin and freqs float32 / complex64 there).
RopeTable rope_complex(const RopeTable& t, const at::Device& device);

// Angles of one axis: [positions, dim/2] float64, angle[p][j] = p * (1 / theta^(2j/dim)), the
// float64 values DiffSynth's precompute_freqs_cis computes (before torch.polar).
at::Tensor rope_angles_1d(int64_t dim, int64_t positions, double theta = 10000.0);

// The table for a grid of f x h x w patches, tokens in (f, h, w) row-major order (the DiT's patch
// order). cos/sin are taken with std::cos/std::sin, as torch.polar does, so the values are
// bit-identical to DiffSynth's freqs_cis.
RopeTable rope_table(int64_t head_dim, int64_t f, int64_t h, int64_t w, double theta = 10000.0);

// Tokens [begin, end) of a table (a rank's slice of the sequence).
RopeTable rope_slice(const RopeTable& t, int64_t begin, int64_t end);

// x: [B, L, H, d] -> [B, L, H, d] in x's dtype, computed in the table's dtype (float64 as in
// DiffSynth), or when the table has `freqs` in float32: the own CUDA kernel for contiguous CUDA
// bf16 x once it is ready on the device (kernels/rope.h), else rope_apply_complex. L must equal
// the table's token count.
at::Tensor rope_apply(const at::Tensor& x, const RopeTable& t);
// ATen's sequence for a table with `freqs`: float32 copy, one complex64 multiply, cast back (what
// the own kernel replaces; `wanlab-engine bench elementwise` times both).
at::Tensor rope_apply_complex(const at::Tensor& x, const RopeTable& t);

}  // namespace wan

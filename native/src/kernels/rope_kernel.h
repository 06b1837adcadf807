// The fused RoPE kernel's code (kernels/kernel_code.h: compiled by NVRTC for the GPU, see
// kernels/rope.h, and by the host compiler for the CPU emulation, rope_bf16_host). One pass over
// a bf16 [B, L, H, d] tensor: each (x[2j], x[2j+1]) pair is widened to float32, rotated by its
// token's angle and rounded back to bf16, where ATen's complex64 path reads and writes the tensor
// four times. A row is one (b, l, h) head vector of d/2 pairs; its token is l = (row / H) % L
// (32-bit: rows < 2^32). A pair moves as one 32-bit word, x[2j] in its low half (little-endian, as
// both CPU and GPU are).
#pragma once
#include "kernels/kernel_code.h"

namespace wan::kernels {

WANLAB_KERNEL_CODE(rope_code,
WANLAB_FN void rope_pair(unsigned int row, unsigned int j, const unsigned int* x, unsigned int* y,
                         const float* cos_t, const float* sin_t, unsigned int heads, unsigned int tokens,
                         unsigned int half) {
  const unsigned int t = (row / heads) % tokens;
  const unsigned long long p = (unsigned long long)row * half + j;
  const unsigned int v = x[p];
  const float a = bf16_to_f32((unsigned short)(v & 0xffffu)), b = bf16_to_f32((unsigned short)(v >> 16));
  const float c = cos_t[(unsigned long long)t * half + j], s = sin_t[(unsigned long long)t * half + j];
  const float re = a * c - b * s, im = a * s + b * c;
  y[p] = (unsigned int)f32_to_bf16(re) | ((unsigned int)f32_to_bf16(im) << 16);
}
)

}  // namespace wan::kernels

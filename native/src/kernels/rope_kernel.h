// The fused RoPE kernel's code, written once and compiled twice: by NVRTC for the GPU (the string
// kRopeKernelSource, see kernels/rope.h) and by the host compiler for the CPU emulation the tests
// run (rope_pair below). One pass over a bf16 [B, L, H, d] tensor: each (x[2j], x[2j+1]) pair is
// widened to float32, rotated by its token's angle and rounded back to bf16 (nearest even, as
// c10::BFloat16), where ATen's complex64 path reads and writes the tensor four times. A row is one
// (b, l, h) head vector of d/2 pairs; its token is l = (row / H) % L (32-bit: rows < 2^32). A pair
// moves as one 32-bit word, x[2j] in its low half (little-endian, as both CPU and GPU are).
//
// WANLAB_KERNEL_CODE(...) both compiles its argument here and turns it into a string, so the two
// compilations cannot drift apart. Inside it: no preprocessor lines and no //-comments (the
// string is one line); WANLAB_FN, as_uint and as_float are defined per side (host: below; device:
// the prelude in kernels/rope.cpp).
#pragma once
#include <cstdint>
#include <cstring>

#define WANLAB_KERNEL_CODE(...) \
  __VA_ARGS__                   \
  inline const char* rope_kernel_code() { return #__VA_ARGS__; }

namespace wan::kernels {

#define WANLAB_FN inline
inline unsigned int as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

WANLAB_KERNEL_CODE(
WANLAB_FN float bf16_to_f32(unsigned short b) { return as_float(((unsigned int)b) << 16); }

WANLAB_FN unsigned short f32_to_bf16(float f) {
  unsigned int u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)0x7fc0u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}

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

#undef WANLAB_FN

}  // namespace wan::kernels

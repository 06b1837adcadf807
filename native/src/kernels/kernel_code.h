// How own kernels' code is written once and compiled twice: by NVRTC for the GPU and by the host
// compiler for the CPU emulation the tests (and each device's first-use check) compare against.
//
// WANLAB_KERNEL_CODE(fn, ...) compiles its argument here and defines fn() returning it as a
// string, so the two compilations cannot drift apart. Inside it: no preprocessor lines and no
// //-comments (the string is one line). The code calls WANLAB_FN, as_uint and as_float, defined
// per side: here for the host, by jit's device_source() for NVRTC. Arithmetic is plain float32
// without fused multiply-adds on both sides (NVRTC runs with --fmad=false), so the device output
// equals the emulation bit for bit.
#pragma once
#include <cstring>

#define WANLAB_KERNEL_CODE(fn, ...) \
  __VA_ARGS__                       \
  inline const char* fn() { return #__VA_ARGS__; }

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

// bf16 <-> float32 on 16-bit patterns: widening is exact; narrowing rounds to nearest even and
// keeps NaN a (quiet) NaN, as c10::BFloat16 does.
WANLAB_KERNEL_CODE(bf16_code,
WANLAB_FN float bf16_to_f32(unsigned short b) { return as_float(((unsigned int)b) << 16); }

WANLAB_FN unsigned short f32_to_bf16(float f) {
  unsigned int u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)0x7fc0u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
)

}  // namespace wan::kernels

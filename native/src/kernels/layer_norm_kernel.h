// The fused LayerNorm + affine + cast kernel's code (kernels/kernel_code.h: compiled by NVRTC, see
// kernels/layer_norm.h, and by the host compiler for the emulation, layer_norm_bf16_host). One row
// of D float32 values per block of T threads (T a power of two): each thread sums its strided
// values, a tree in shared memory adds the T partial sums (the same order on both sides), the
// same again for the squared deviations from the mean, then y = (x - mean) * rstd * w + b is
// rounded to bf16 and written once. ATen's path writes a float32 LayerNorm and then reads it
// again to cast it.
#pragma once
#include <cmath>

#include "kernels/kernel_code.h"

namespace wan::kernels {

WANLAB_KERNEL_CODE(layer_norm_code,
WANLAB_FN float ln_partial_sum(const float* row, unsigned int tid, unsigned int threads, unsigned int D) {
  float s = 0.0f;
  for (unsigned int i = tid; i < D; i += threads) s += row[i];
  return s;
}

WANLAB_FN float ln_partial_squares(const float* row, float mean, unsigned int tid, unsigned int threads,
                                   unsigned int D) {
  float s = 0.0f;
  for (unsigned int i = tid; i < D; i += threads) {
    const float d = row[i] - mean;
    s += d * d;
  }
  return s;
}

WANLAB_FN void ln_tree_step(float* partial, unsigned int tid, unsigned int stride) {
  if (tid < stride) partial[tid] += partial[tid + stride];
}

WANLAB_FN float ln_rstd(float squares, unsigned int D, float eps) { return 1.0f / sqrtf(squares / (float)D + eps); }

WANLAB_FN void ln_write(const float* row, unsigned short* out, const float* w, const float* b, float mean, float rstd,
                        unsigned int tid, unsigned int threads, unsigned int D) {
  for (unsigned int i = tid; i < D; i += threads) out[i] = f32_to_bf16((row[i] - mean) * rstd * w[i] + b[i]);
}
)

}  // namespace wan::kernels

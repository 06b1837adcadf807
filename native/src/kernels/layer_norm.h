// LayerNorm with an affine weight and bias, cast to bf16, as one own CUDA kernel
// (kernels/layer_norm_kernel.h): the DiT's adaLN modulation (w = 1 + scale, b = shift), its
// cross-attention norm and the head's, on the bf16 CUDA path. Compiled with NVRTC at its first
// use on a device and checked there once, bit for bit, against the host emulation of the same
// code; until it is ready ATen's layer_norm + cast runs (kernels/jit.h).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace wan::kernels {

// x: CUDA float32 [..., D], contiguous; w, b: float32 [D] on x's device. True when the kernel can
// run this call; else `why` (if given) says why not.
bool layer_norm_ready(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, std::string* why = nullptr);

// -> [..., D] bf16: LayerNorm(x) * w + b (layer_norm_ready must hold).
at::Tensor layer_norm_bf16(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps);

// The same code on the CPU (x, w, b float32 on the CPU): the reference the device kernel must equal.
at::Tensor layer_norm_bf16_host(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps);

// The NVRTC translation unit.
std::string layer_norm_source();

}  // namespace wan::kernels

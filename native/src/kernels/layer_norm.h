// LayerNorm with an affine weight and bias, cast to bf16, as one own CUDA kernel
// (kernels/layer_norm_kernel.h): the DiT's adaLN modulation (w = 1 + scale, b = shift), its
// cross-attention norm and the head's, on the bf16 CUDA path. Compiled with NVRTC at its first
// use on a device and checked there once, bit for bit, against the host emulation of the same
// code; until it is ready ATen's layer_norm + cast runs (kernels/jit.h).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace wan::kernels {

// x: CUDA float32 [..., D], contiguous; w, b: float32 [D] on x's device. -> LayerNorm(x) * w + b,
// [..., D] bf16; or, when the kernel cannot run this call, an undefined tensor and `why` (if
// given) says why (see kernels/jit.h device_kernel, or the shapes).
at::Tensor try_layer_norm_bf16(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps,
                               std::string* why = nullptr);

// The same code on the CPU (x, w, b float32 on the CPU): the reference the device kernel must equal.
at::Tensor layer_norm_bf16_host(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps);

// The NVRTC translation unit.
std::string layer_norm_source();

}  // namespace wan::kernels

// RoPE as one own CUDA kernel (kernels/rope_kernel.h) for the DiT's bf16 path: what models/rope.cpp
// runs on CUDA bf16 when the kernel is ready, instead of ATen's complex64 sequence (float32 copy,
// complex multiply, cast back: four passes over q or k; `wanlab-engine bench elementwise` times
// both). The kernel is compiled with NVRTC at its first use on a device and checked there once,
// bit for bit against the host emulation of the same code; until it is ready (no NVRTC, a failed
// compile or check: logged once) ATen's path runs.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace wan::kernels {

// x: CUDA bf16 [B, L, H, d], contiguous; cos, sin: float32 [L, d/2] on x's device. -> x rotated,
// [B, L, H, d] bf16; or, when the kernel cannot run this call, an undefined tensor and `why` (if
// given) says why (see kernels/jit.h device_kernel, or the shapes).
at::Tensor try_rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, std::string* why = nullptr);

// The same code on the CPU (x bf16 [B, L, H, d] on the CPU; cos, sin float32): the reference the
// device kernel must equal bit for bit.
at::Tensor rope_bf16_host(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The NVRTC translation unit (device prelude, the shared code, the extern "C" entry).
std::string rope_source();

}  // namespace wan::kernels

// Own CUDA kernels, compiled at run time: NVRTC turns a kernel's source into a cubin for the
// device's architecture at first use, the driver API loads and launches it. Both libraries are
// opened with dlopen, so the engine links neither: a CPU build compiles this file too, and a GPU
// machine without NVRTC runs ATen's path instead (the Kernel's error says why, logged once).
//
// libnvrtc is looked for at $WANLAB_NVRTC, then by soname (libnvrtc.so, .so.13, .so.12), then
// beside the CUDA libtorch (its pip wheel's nvidia/*/lib), then in /usr/local/cuda/lib64.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wan::kernels {

// A loaded kernel function (a CUfunction) or why there is none.
struct Kernel {
  void* fn = nullptr;
  std::string error;  // empty when fn is set
  explicit operator bool() const { return fn != nullptr; }
};

// Kernel `name` (declared extern "C" __global__ in the full translation unit `source()`) on CUDA
// device `device`: compiled for its architecture at the first call, then run once through
// `check` (which returns "" or what is wrong; the tests' reference is the host emulation of the
// same code); cached per (name, device), failure included, and a failure logged once. Without a
// kernel, its error says why: WANLAB_OWN_KERNELS=0 in the environment (all own kernels off, e.g.
// to time the engine without them), a build without CUDA, a device that is not CUDA, or the
// compile or check failing.
Kernel device_kernel(const std::string& name, const std::function<std::string()>& source, const at::Device& device,
                     const std::function<std::string(const Kernel&)>& check);

// Launches `blocks` blocks of threads_x × threads_y on `stream` (a cudaStream_t / CUstream). args:
// pointers to each argument. Throws wan::Error with the driver's message on failure.
void launch(const Kernel& k, int64_t blocks, int threads_x, int threads_y, void* stream, std::vector<void*> args);

// A full NVRTC translation unit: the device definitions of WANLAB_FN, as_uint and as_float
// (kernels/kernel_code.h), bf16_code(), then `code` (a WANLAB_KERNEL_CODE string) and `entry`
// (the extern "C" __global__ function, which composes the code's functions).
std::string device_source(const char* code, const std::string& entry);

}  // namespace wan::kernels

// Own CUDA kernels, compiled at run time: NVRTC turns a kernel's source into a cubin for the
// device's architecture at first use, the driver API loads and launches it. Both libraries are
// opened with dlopen, so the engine links neither: a CPU build compiles this file too, and a GPU
// machine without NVRTC runs ATen's path instead (kernel() says why).
//
// libnvrtc is looked for at $WANLAB_NVRTC, then by soname (libnvrtc.so, .so.13, .so.12), then
// beside the CUDA libtorch (its pip wheel's nvidia/*/lib), then in /usr/local/cuda/lib64.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wan::kernels {

// A loaded kernel function (a CUfunction) or why there is none.
struct Kernel {
  void* fn = nullptr;
  std::string error;  // empty when fn is set
  explicit operator bool() const { return fn != nullptr; }
};

// Compiles `source` (a full translation unit: its entry `name` declared extern "C" __global__)
// for device `device_index` of compute capability `cc` (major * 10 + minor), once per
// (name, device); later calls return the cached result, failure included.
Kernel kernel(const std::string& name, const std::string& source, int device_index, int cc);

// Launches `blocks` blocks of threads_x × threads_y on `stream` (a cudaStream_t / CUstream). args:
// pointers to each argument. Throws wan::Error with the driver's message on failure.
void launch(const Kernel& k, int64_t blocks, int threads_x, int threads_y, void* stream, std::vector<void*> args);

// The NVRTC compile of `source` alone (no device needed): the cubin's size, or the error with the
// compiler log. What a test can run on a GPU-less machine that has libnvrtc.
struct CompileResult {
  size_t cubin_bytes = 0;
  std::string error;
};
CompileResult compile(const std::string& name, const std::string& source, int cc);

}  // namespace wan::kernels

// The few CUDA runtime services the engine needs beyond ATen's ops: synchronisation, the caching
// allocator's memory counters, seeded generators, pinned host memory and host->device copies on a
// side stream. A build over a CPU-only libtorch (Debian's, CI) compiles this file without CUDA
// (WANLAB_CUDA undefined): the device queries answer "no CUDA" and the CUDA-only calls fail with a
// message saying so. Everything else in the engine stays device-agnostic ATen.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace wan {

// True when this build links a CUDA libtorch (WANLAB_CUDA).
constexpr bool cuda_built() {
#ifdef WANLAB_CUDA
  return true;
#else
  return false;
#endif
}
// True when this build links a CUDA libtorch and a CUDA device is visible.
bool cuda_available();
int cuda_device_count();
std::string cuda_device_name(const at::Device& d);  // "NVIDIA H200"

// Compute capability major * 10 + minor (90 for an H100/H200).
int cuda_compute_capability(const at::Device& d);
// The device's current stream as a raw cudaStream_t (for own kernels' launches, kernels/jit.h).
void* cuda_current_stream(const at::Device& d);

// Waits for all work queued on the device's current stream (no-op on the CPU).
void device_synchronize(const at::Device& d);

// While it lives, on the thread that made it: `d` is the current device and a stream of the
// thread's own (from PyTorch's pool) the current stream on it, so ranks sharing a GPU queue their
// work on separate streams (each rank's worker thread holds one). Work handed between threads
// must be synchronised (device_synchronize on the side that queued it). A no-op on the CPU.
class RankStreamScope {
 public:
  explicit RankStreamScope(const at::Device& d);
  ~RankStreamScope();
  RankStreamScope(const RankStreamScope&) = delete;
  RankStreamScope& operator=(const RankStreamScope&) = delete;

 private:
  struct Guards;
  std::unique_ptr<Guards> guards_;
};

// An event after the work queued so far on the device's current stream; host_wait blocks the
// calling thread until that work has run (a null mark returns at once).
std::shared_ptr<void> mark_stream(const at::Device& d);
void host_wait(const std::shared_ptr<void>& mark);

// The CUDA caching allocator's counters for one device (all zero on the CPU).
struct DeviceMemory {
  int64_t allocated = 0, peak_allocated = 0;  // bytes in live tensors, and its peak since the reset
  int64_t reserved = 0, peak_reserved = 0;    // bytes held from the driver (cudaMalloc'd)
};
DeviceMemory device_memory(const at::Device& d);
// What the driver reports for the whole device (cudaMemGetInfo): free and total bytes.
struct DeviceCapacity {
  int64_t free = 0, total = 0;
};
DeviceCapacity cuda_memory_info(const at::Device& d);
void reset_device_peak(const at::Device& d);

// A generator on `d` seeded with `seed`, independent of the global default one. On CUDA it is
// PyTorch's Philox generator: torch.Generator(device="cuda").manual_seed(seed) draws the same values.
at::Generator seeded_generator(const at::Device& d, uint64_t seed);

// A page-locked copy of a CPU tensor (so host->device copies run asynchronously at full PCIe rate).
at::Tensor pinned_copy(const at::Tensor& host);

// Host->device copies queued on a per-device side stream, so they overlap the compute queued on
// the current stream. wait() makes the current stream wait for them and tells the caching
// allocator the current stream uses the memory (it is not reused before that work finishes).
struct AsyncCopy {
  std::vector<at::Tensor> tensors;  // on the device, valid after wait()
  std::shared_ptr<void> event;      // the side stream's completion event
  void wait();
};
AsyncCopy copy_to_device_async(const std::vector<at::Tensor>& pinned_host, const at::Device& d);

}  // namespace wan

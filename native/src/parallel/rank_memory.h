// Peak memory of one rank over a request, measured where the rank allocates.
//
// CPU ranks are threads of one process, so the process's RSS says nothing per rank. Instead c10's
// thread-local memory reporting is switched on for the rank's thread: a MemoryReportingInfoBase
// installed as the thread's PROFILER_STATE debug info (what the autograd profiler installs) makes
// the CPU allocator report every allocation and free made on that thread (c10::
// reportMemoryUsageToProfiler). The rank's live bytes start at 0 and the peak is their maximum:
// the activations and buffers this rank allocated during the request (weights and tensors made
// before it are not counted; a block freed by another thread stays counted). Checked on Debian's
// libtorch 1.13 and on libtorch 2.13 (test: parallel_rank_memory_peak_is_per_thread).
//
// CUDA ranks (one per device): the CUDA caching allocator's peak allocated bytes of the device
// since its last reset (the engine resets it at the start of each request; builds against a CUDA
// libtorch define WANLAB_CUDA).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

namespace wan {

class RankMemory {
 public:
  // Starts measuring on the calling thread (CPU) or device (CUDA).
  explicit RankMemory(at::Device device);
  ~RankMemory();
  RankMemory(const RankMemory&) = delete;
  RankMemory& operator=(const RankMemory&) = delete;

  int64_t peak_bytes() const;    // since construction; -1 where this build cannot measure it
  int64_t current_bytes() const;  // live bytes allocated (net) since construction; -1 likewise
  const char* method() const;

  struct Impl;

 private:
  at::Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wan

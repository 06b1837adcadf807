#include "parallel/rank_memory.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <algorithm>

#ifdef WANLAB_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace wan {

namespace {
// libtorch 1.13 passes the totals as int64_t, 2.x as size_t: take the type from the declaration.
template <class F>
struct TotalArg;
template <class C, class T>
struct TotalArg<void (C::*)(void*, int64_t, T, T, c10::Device)> {
  using type = T;
};
using Total = TotalArg<decltype(&c10::MemoryReportingInfoBase::reportMemoryUsage)>::type;

struct ThreadReporter : c10::MemoryReportingInfoBase {
  int64_t live = 0, peak = 0;
  void reportMemoryUsage(void*, int64_t alloc_size, Total, Total, c10::Device d) override {
    if (!d.is_cpu()) return;
    live += alloc_size;
    peak = std::max(peak, live);
  }
  bool memoryProfilingEnabled() const override { return true; }
};

// Bytes allocated on the rank, now or at the peak: on the CPU from this thread's reports, on
// CUDA from the caching allocator's counters. -1 where neither applies.
int64_t allocated_bytes(const ThreadReporter* reporter, at::Device device, bool peak) {
  if (reporter) return peak ? reporter->peak : reporter->live;
#ifdef WANLAB_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return peak ? stats.allocated_bytes[0].peak : stats.allocated_bytes[0].current;
  }
#endif
  return -1;
}
}  // namespace

struct RankMemory::Impl {
  std::shared_ptr<ThreadReporter> reporter;
  std::unique_ptr<c10::DebugInfoGuard> guard;
};

RankMemory::RankMemory(at::Device device) : device_(device), impl_(std::make_unique<Impl>()) {
  if (device.is_cpu()) {
    impl_->reporter = std::make_shared<ThreadReporter>();
    impl_->guard = std::make_unique<c10::DebugInfoGuard>(c10::DebugInfoKind::PROFILER_STATE, impl_->reporter);
  }
}

RankMemory::~RankMemory() = default;

int64_t RankMemory::peak_bytes() const { return allocated_bytes(impl_->reporter.get(), device_, true); }

int64_t RankMemory::current_bytes() const { return allocated_bytes(impl_->reporter.get(), device_, false); }

const char* RankMemory::method() const {
  if (impl_->reporter) return "c10 thread-local allocation reports (CPU allocator)";
#ifdef WANLAB_CUDA
  if (device_.is_cuda()) return "CUDA caching allocator peak allocated bytes since the request began";
#endif
  return "unavailable";
}

}  // namespace wan

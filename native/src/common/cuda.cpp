#include "common/cuda.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#ifdef WANLAB_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include <map>
#include <mutex>

#include "common/error.h"

namespace wan {

#ifdef WANLAB_CUDA

namespace {
// A cudaEvent_t owned by a shared_ptr (no timing: the cheapest kind, for ordering only).
std::shared_ptr<void> record_event(c10::cuda::CUDAStream stream) {
  cudaEvent_t ev = nullptr;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(ev, stream.stream()));
  return std::shared_ptr<void>(ev, [](void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); });
}
void wait_event(const std::shared_ptr<void>& ev, c10::cuda::CUDAStream stream) {
  C10_CUDA_CHECK(cudaStreamWaitEvent(stream.stream(), static_cast<cudaEvent_t>(ev.get()), 0));
}

c10::cuda::CUDAStream side_stream(c10::DeviceIndex index) {
  static std::mutex mu;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  std::lock_guard<std::mutex> lock(mu);
  auto it = streams.find(index);
  if (it == streams.end()) it = streams.emplace(index, c10::cuda::getStreamFromPool(false, index)).first;
  return it->second;
}
}  // namespace

bool cuda_available() { return cuda_device_count() > 0; }
int cuda_device_count() { return int(c10::cuda::device_count()); }

std::string cuda_device_name(const at::Device& d) {
  if (!d.is_cuda()) return "cpu";
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, d.has_index() ? d.index() : 0) != cudaSuccess) return "cuda (unknown)";
  return prop.name;
}

int cuda_compute_capability(const at::Device& d) {
  cudaDeviceProp prop;
  C10_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.has_index() ? d.index() : 0));
  return prop.major * 10 + prop.minor;
}

void* cuda_current_stream(const at::Device& d) {
  return c10::cuda::getCurrentCUDAStream(d.has_index() ? d.index() : 0).stream();
}

void device_synchronize(const at::Device& d) {
  if (!d.is_cuda()) return;
  c10::cuda::getCurrentCUDAStream(d.has_index() ? d.index() : 0).synchronize();
}

struct RankStreamScope::Guards {
  c10::cuda::CUDAGuard device;        // restored last
  c10::cuda::CUDAStreamGuard stream;  // restored first
  explicit Guards(c10::DeviceIndex i) : device(i), stream(c10::cuda::getStreamFromPool(false, i)) {}
};
RankStreamScope::RankStreamScope(const at::Device& d) {
  if (d.is_cuda()) guards_ = std::make_unique<Guards>(d.has_index() ? d.index() : 0);
}
RankStreamScope::~RankStreamScope() = default;

std::shared_ptr<void> mark_stream(const at::Device& d) {
  if (!d.is_cuda()) return nullptr;
  return record_event(c10::cuda::getCurrentCUDAStream(d.has_index() ? d.index() : 0));
}

void host_wait(const std::shared_ptr<void>& mark) {
  if (mark) C10_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(mark.get())));
}

DeviceMemory device_memory(const at::Device& d) {
  if (!d.is_cuda()) return {};
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
  // Index 0 of each stat array is the aggregate over pool kinds.
  return {s.allocated_bytes[0].current, s.allocated_bytes[0].peak, s.reserved_bytes[0].current,
          s.reserved_bytes[0].peak};
}

DeviceCapacity cuda_memory_info(const at::Device& d) {
  if (!d.is_cuda()) fail("cuda_memory_info: ", d.str(), " is not a CUDA device");
  c10::cuda::CUDAGuard guard(d.has_index() ? d.index() : 0);
  size_t free = 0, total = 0;
  C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return {int64_t(free), int64_t(total)};
}

void reset_device_peak(const at::Device& d) {
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
}

at::Generator seeded_generator(const at::Device& d, uint64_t seed) {
  at::Generator g = d.is_cuda() ? at::cuda::detail::createCUDAGenerator(d.has_index() ? d.index() : 0)
                                : at::make_generator<at::CPUGeneratorImpl>();
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(seed);
  return g;
}

at::Tensor pinned_copy(const at::Tensor& host) {
  if (!host.device().is_cpu()) fail("pinned_copy: tensor is on ", host.device().str(), ", not the CPU");
  return host.contiguous().pin_memory();
}

void AsyncCopy::wait() {
  if (!event || tensors.empty()) return;
  const c10::DeviceIndex index = tensors.front().device().index();
  c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(index);
  wait_event(event, current);
  for (const at::Tensor& t : tensors) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), current);
  event.reset();
}

AsyncCopy copy_to_device_async(const std::vector<at::Tensor>& pinned_host, const at::Device& d) {
  if (!d.is_cuda()) fail("copy_to_device_async: ", d.str(), " is not a CUDA device");
  const c10::DeviceIndex index = d.has_index() ? d.index() : 0;
  c10::cuda::CUDAGuard device_guard(index);
  c10::cuda::CUDAStream side = side_stream(index);
  AsyncCopy out;
  {
    c10::cuda::CUDAStreamGuard stream_guard(side);
    for (const at::Tensor& h : pinned_host) {
      at::Tensor t = at::empty(h.sizes(), h.options().device(at::Device(at::kCUDA, index)).pinned_memory(false));
      t.copy_(h, /*non_blocking=*/true);
      out.tensors.push_back(t);
    }
    out.event = record_event(side);
  }
  return out;
}

#else  // a CPU-only libtorch

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail(what, ": this wanlab build has no CUDA (it was built against a CPU-only libtorch; build it against a "
       "CUDA PyTorch: WANLAB_TORCH_DIR=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'))");
}
}  // namespace

bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(const at::Device& d) { return d.is_cuda() ? "cuda (not in this build)" : "cpu"; }
int cuda_compute_capability(const at::Device&) { no_cuda("cuda_compute_capability"); }
void* cuda_current_stream(const at::Device&) { no_cuda("cuda_current_stream"); }
void device_synchronize(const at::Device& d) {
  if (d.is_cuda()) no_cuda("device_synchronize");
}
struct RankStreamScope::Guards {};
RankStreamScope::RankStreamScope(const at::Device&) {}  // CUDA ranks are refused before any rank starts
RankStreamScope::~RankStreamScope() = default;
std::shared_ptr<void> mark_stream(const at::Device&) { return nullptr; }
void host_wait(const std::shared_ptr<void>&) {}
DeviceMemory device_memory(const at::Device&) { return {}; }
DeviceCapacity cuda_memory_info(const at::Device&) { no_cuda("cuda_memory_info"); }
void reset_device_peak(const at::Device&) {}
at::Generator seeded_generator(const at::Device& d, uint64_t seed) {
  if (d.is_cuda()) no_cuda("seeded_generator");
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>();
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(seed);
  return g;
}
at::Tensor pinned_copy(const at::Tensor&) { no_cuda("pinned_copy"); }
void AsyncCopy::wait() {}
AsyncCopy copy_to_device_async(const std::vector<at::Tensor>&, const at::Device&) { no_cuda("copy_to_device_async"); }

#endif

}  // namespace wan

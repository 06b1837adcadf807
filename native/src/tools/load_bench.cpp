#include "tools/load_bench.h"

#include <chrono>

#include "checkpoint/layout.h"
#include "common/proc_status.h"

namespace wan {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// Reads every byte once, allocating nothing: what the first forward pass costs in page faults.
double byte_sum(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const uint8_t* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = c.numel() * c.element_size();
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return static_cast<double>(s);
}
}  // namespace

nlohmann::json bench_load(const std::string& dir, bool mmap, bool touch) {
  int64_t rss0 = proc_status_bytes("VmRSS:");
  auto t0 = std::chrono::steady_clock::now();
  LoadedModel m = load_model(dir, mmap);
  double load_s = since(t0);
  int64_t rss1 = proc_status_bytes("VmRSS:");
  int64_t params = 0, bytes = 0;
  double checksum = 0, touch_s = 0;
  for (const TensorMap* t : {&m.dit, &m.t5, &m.vae})
    for (const auto& [_, v] : *t) {
      params += v.data.numel();
      bytes += v.data.numel() * static_cast<int64_t>(dtype_size(v.dtype));
    }
  if (touch) {
    auto t1 = std::chrono::steady_clock::now();
    for (const TensorMap* t : {&m.dit, &m.t5, &m.vae})
      for (const auto& [_, v] : *t)
        checksum += byte_sum(v.data);
    touch_s = since(t1);
  }
  return {{"dir", dir},
          {"mode", mmap ? "mmap" : "copy"},
          {"load_seconds", load_s},
          {"touch_seconds", touch_s},
          {"touched", touch},
          {"byte_checksum", checksum},
          {"params", params},
          {"bytes", bytes},
          {"rss_before_bytes", rss0},
          {"rss_after_load_bytes", rss1},
          {"rss_after_touch_bytes", proc_status_bytes("VmRSS:")},
          {"peak_rss_bytes", proc_status_bytes("VmHWM:")}};
}

}  // namespace wan

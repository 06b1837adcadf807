// Faults the device-group tests inject through the group's hooks (parallel/device_group.h
// StepHook, AttentionHook): at denoising step `step` (0-based), rank `rank` throws, stalls for
// `stall` (giving up early when the request is aborted), or puts its self-attention query on the
// wrong device (the meta device).
#pragma once
#include <chrono>
#include <thread>

#include "common/error.h"
#include "parallel/device_group.h"

namespace wantest {

struct FaultInjection {
  enum Kind { None, Throw, Stall, WrongDevice } kind = None;
  int rank = 0;
  int64_t step = 0;
  std::chrono::milliseconds stall{0};
};

// Sets the group's hooks for `f` from its next request on; a fault of kind None removes them.
inline void inject_fault(wan::DeviceGroup& g, const FaultInjection& f) {
  g.set_step_hook({});
  g.set_attention_hook({});
  if (f.kind == FaultInjection::Throw || f.kind == FaultInjection::Stall)
    g.set_step_hook([f](wan::RankState& s, int64_t step) {
      if (s.ctx.rank != f.rank || step != f.step) return;
      if (f.kind == FaultInjection::Throw)
        wan::fail("rank ", s.ctx.rank, " (", s.ctx.device_name, "): injected fault at ", s.ctx.where);
      const auto until = std::chrono::steady_clock::now() + f.stall;
      while (std::chrono::steady_clock::now() < until && !s.ctx.abort->load())
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
  if (f.kind == FaultInjection::WrongDevice)
    g.set_attention_hook([f](wan::RankState& s, at::Tensor& q, at::Tensor&, at::Tensor&) {
      if (s.ctx.rank == f.rank && s.step == f.step) q = at::empty(q.sizes(), q.options().device(at::kMeta));
    });
}

}  // namespace wantest

// The flow-match sampler as DiffSynth-Studio runs Wan (FlowMatchScheduler template "Wan"):
//   sigmas    = linspace(denoising_strength, 0, steps + 1)[:-1]            (float32)
//   sigmas    = shift * sigmas / (1 + (shift - 1) * sigmas)                (float32)
//   timesteps = sigmas * 1000
//   step:     x <- x + v * (sigma_next - sigma), sigma_next = 0 after the last step
#pragma once
#include <ATen/ATen.h>

namespace wan {

struct FlowMatchSchedule {
  at::Tensor sigmas;     // [steps] float32
  at::Tensor timesteps;  // [steps] float32
  int64_t steps() const { return sigmas.size(0); }
  // One Euler step from step index i; `v` is the (CFG-combined) velocity.
  at::Tensor step(const at::Tensor& x, const at::Tensor& v, int64_t i) const;
};

FlowMatchSchedule wan_schedule(int64_t steps, double denoising_strength, double shift);

}  // namespace wan

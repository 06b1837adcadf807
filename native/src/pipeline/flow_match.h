// The flow-match sampler as DiffSynth-Studio runs Wan (FlowMatchScheduler template "Wan"):
//   sigmas    = linspace(denoising_strength, 0, steps + 1)[:-1]            (float32)
//   sigmas    = shift * sigmas / (1 + (shift - 1) * sigmas)                (float32)
//   timesteps = sigmas * 1000
//   step:     x <- x + v * (sigma_next - sigma), sigma_next = 0 after the last step
// Or from an explicit list of timesteps (LightX2V's denoising_step_list, e.g. 1000, 750, 500, 250),
// shifted as LightX2V's WanStepDistillScheduler shifts it:
//   table     = linspace(1, 0, 1001)[:-1]                                  (float32)
//   sigmas    = table[1000 - t] for each listed t (t / 1000 for a t that is not an integer)
//   sigmas    = shift * sigmas / (1 + (shift - 1) * sigmas)                (float32)
//   timesteps = sigmas * 1000
// and the same Euler step. [1000, 750, 500, 250] gives wan_schedule(4, 1, shift) bit for bit.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

// Timestep lists: at most this many entries (the training schedule's 1000 timesteps).
constexpr int64_t kMaxTimesteps = 1000;
// "" when `timesteps` is a usable list: 1 to kMaxTimesteps finite values in (0, 1000], strictly
// decreasing; else why not, naming the first offending index ("timesteps[2] = 600 is not below
// timesteps[1] = 500: ...").
std::string timesteps_problem(const std::vector<double>& timesteps);
// The schedule of an explicit timestep list (see above); fails with timesteps_problem's message.
FlowMatchSchedule listed_schedule(const std::vector<double>& timesteps, double shift);

struct T2VRequest;
// The request's schedule: its timesteps when it lists them, else wan_schedule's.
FlowMatchSchedule request_schedule(const T2VRequest& r);

}  // namespace wan

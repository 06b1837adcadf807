#include "pipeline/flow_match.h"

#include <cmath>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "pipeline/request.h"

namespace wan {

namespace {
// torch.linspace(start, end, n) in float32 as PyTorch 2.x computes it on CPU: the first half
// as start + step·i, the second as end − step·(n−1−i), each a fused multiply-add (one rounding).
// libtorch 1.13 rounds differently in the last bit, so the engine does not call at::linspace.
at::Tensor linspace_f32(double start_d, double end_d, int64_t n) {
  const float start = static_cast<float>(start_d), end = static_cast<float>(end_d);
  const float step = n > 1 ? (end - start) / static_cast<float>(n - 1) : 0.0f;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = i < n / 2 ? std::fma(step, static_cast<float>(i), start)
                     : std::fma(-step, static_cast<float>(n - 1 - i), end);
  if (n == 1) v[0] = start;
  return at::from_blob(v.data(), {n}, at::kFloat).clone();
}
}  // namespace

namespace {
// The shift and the timesteps, in the same float32 operations and order as the reference.
FlowMatchSchedule shifted(at::Tensor s, double shift) {
  s = shift * s / (1 + (shift - 1) * s);
  return {s, s * 1000};
}

std::string number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

FlowMatchSchedule wan_schedule(int64_t steps, double denoising_strength, double shift) {
  if (steps < 1) fail("num_inference_steps must be at least 1, got ", steps);
  if (!(denoising_strength > 0.0 && denoising_strength <= 1.0))
    fail("denoising_strength must be in (0, 1], got ", denoising_strength);
  if (!(shift > 0.0)) fail("sigma_shift must be positive, got ", shift);
  // Same float32 operations in the same order as the reference, so the values match bit for bit.
  return shifted(linspace_f32(denoising_strength, 0.0, steps + 1).slice(0, 0, steps), shift);
}

std::string timesteps_problem(const std::vector<double>& t) {
  if (t.empty()) return "timesteps must list at least one timestep";
  if (int64_t(t.size()) > kMaxTimesteps)
    return concat("timesteps lists ", t.size(), " timesteps, at most ", kMaxTimesteps, " are allowed");
  for (size_t i = 0; i < t.size(); ++i) {
    if (!(std::isfinite(t[i]) && t[i] > 0.0 && t[i] <= 1000.0))
      return concat("timesteps[", i, "] = ", number(t[i]), " is outside (0, 1000]");
    if (i > 0 && !(t[i] < t[i - 1]))
      return concat("timesteps[", i, "] = ", number(t[i]), " is not below timesteps[", i - 1, "] = ", number(t[i - 1]),
                    ": timesteps must be strictly decreasing");
  }
  return "";
}

FlowMatchSchedule listed_schedule(const std::vector<double>& timesteps, double shift) {
  if (const std::string why = timesteps_problem(timesteps); !why.empty()) fail_param("timesteps", why);
  if (!(shift > 0.0)) fail("sigma_shift must be positive, got ", shift);
  // LightX2V indexes linspace(1, 0, 1001) by 1000 - t; a timestep between integers reads t / 1000.
  const at::Tensor table = linspace_f32(1.0, 0.0, 1001);
  const float* tab = table.data_ptr<float>();
  std::vector<float> s(timesteps.size());
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const double t = timesteps[i];
    s[i] = t == std::floor(t) ? tab[1000 - int64_t(t)] : static_cast<float>(t / 1000.0);
  }
  return shifted(at::from_blob(s.data(), {int64_t(s.size())}, at::kFloat).clone(), shift);
}

FlowMatchSchedule request_schedule(const T2VRequest& r) {
  return r.timesteps.empty() ? wan_schedule(r.num_inference_steps, r.denoising_strength, r.sigma_shift)
                             : listed_schedule(r.timesteps, r.sigma_shift);
}

at::Tensor FlowMatchSchedule::step(const at::Tensor& x, const at::Tensor& v, int64_t i) const {
  at::Tensor sigma = sigmas[i];
  at::Tensor next = i + 1 < steps() ? sigmas[i + 1] : at::zeros({}, at::kFloat);
  return x + v * (next - sigma);
}

}  // namespace wan

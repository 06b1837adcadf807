#include "pipeline/flow_match.h"

#include <cmath>
#include <vector>

#include "common/error.h"

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

FlowMatchSchedule wan_schedule(int64_t steps, double denoising_strength, double shift) {
  if (steps < 1) fail("num_inference_steps must be at least 1, got ", steps);
  if (!(denoising_strength > 0.0 && denoising_strength <= 1.0))
    fail("denoising_strength must be in (0, 1], got ", denoising_strength);
  if (!(shift > 0.0)) fail("sigma_shift must be positive, got ", shift);
  // Same float32 operations in the same order as the reference, so the values match bit for bit.
  at::Tensor s = linspace_f32(denoising_strength, 0.0, steps + 1).slice(0, 0, steps);
  s = shift * s / (1 + (shift - 1) * s);
  return {s, s * 1000};
}

at::Tensor FlowMatchSchedule::step(const at::Tensor& x, const at::Tensor& v, int64_t i) const {
  at::Tensor sigma = sigmas[i];
  at::Tensor next = i + 1 < steps() ? sigmas[i + 1] : at::zeros({}, at::kFloat);
  return x + v * (next - sigma);
}

}  // namespace wan

#include "pipeline/tea_cache.h"

#include <array>
#include <map>

#include "common/error.h"

namespace wan {

namespace {
// np.poly1d coefficients, highest power first (DiffSynth's TeaCache.coefficients_dict).
const std::map<std::string, std::array<double, 5>>& coefficients() {
  static const std::map<std::string, std::array<double, 5>> c = {
      {"Wan2.1-T2V-1.3B", {-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02}},
      {"Wan2.1-T2V-14B", {-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01}},
  };
  return c;
}
}  // namespace

std::string tea_cache_model(const DitArch& a, const std::string& model_id) {
  std::string allowed;
  for (const auto& [id, _] : coefficients()) allowed += (allowed.empty() ? "" : ", ") + id;
  if (!model_id.empty()) {
    if (!coefficients().count(model_id)) fail_param("tea_cache_model_id", "tea_cache_model_id must be one of ", allowed, ", got '", model_id, "'");
    return model_id;
  }
  if (a.dim == 1536 && a.num_layers == 30) return "Wan2.1-T2V-1.3B";
  if (a.dim == 5120 && a.num_layers == 40) return "Wan2.1-T2V-14B";
  fail_param("tea_cache_model_id", "tea_cache_model_id: this DiT (dim ", a.dim, ", ", a.num_layers,
       " layers) is neither Wan2.1-T2V-1.3B nor 14B; give the calibration to use (", allowed, ")");
}

std::vector<bool> tea_cache_skips(const WanDiT& dit, const FlowMatchSchedule& sched, double l1_thresh,
                                  const std::string& model_id) {
  const std::array<double, 5>& c = coefficients().at(tea_cache_model(dit.arch(), model_id));
  const int64_t steps = sched.steps();
  std::vector<bool> skipped(size_t(steps), false);
  double accumulated = 0;
  at::Tensor previous;  // t_mod of the step before
  for (int64_t i = 0; i < steps; ++i) {
    const at::Tensor t_mod = dit.time_modulation(sched.timesteps[i].item<float>());  // [1, 6, D] float32
    if (i == 0 || i == steps - 1) {
      accumulated = 0;
    } else {
      const double rel = ((t_mod - previous).abs().mean() / previous.abs().mean()).item<double>();
      double y = 0;
      for (double k : c) y = y * rel + k;  // Horner, as np.poly1d evaluates
      accumulated += y;
      if (accumulated < l1_thresh) skipped[size_t(i)] = true;
      else accumulated = 0;
    }
    previous = t_mod;
  }
  return skipped;
}

}  // namespace wan

// Noise and flow-match schedule against PyTorch 2.13 + DiffSynth-Studio (test/golden/make_sampler.py).
#include "common/error.h"
#include "pipeline/flow_match.h"
#include "pipeline/noise.h"
#include "golden.h"
#include "test.h"

using namespace wan;

namespace {
const at::Tensor& G(const std::string& name) { return wantest::golden_tensor("sampler", name); }
}  // namespace

TEST(sampler_noise_is_bit_identical_to_torch_randn_for_any_seed) {
  at::Tensor seeds = G("noise.seeds");
  for (int64_t i = 0; i < seeds.size(0); ++i) {
    const uint64_t seed = static_cast<uint64_t>(seeds[i].item<int64_t>());  // int64 bit pattern of the uint64
    for (const char* name : {"s15", "s16", "s17", "s64", "s1920"}) {
      const at::Tensor& want = G("noise." + std::to_string(i) + "." + name);
      at::Tensor got = initial_noise(seed, want.sizes());
      if (!at::equal(got, want))
        throw wantest::Failure{"noise differs for seed " + std::to_string(seed) + " shape " + name};
    }
  }
}

TEST(sampler_wan_schedule_matches_diffsynth_bit_for_bit) {
  for (int i = 0; i < 5; ++i) {
    const std::string p = "schedule." + std::to_string(i) + ".";
    at::Tensor params = G(p + "params");
    FlowMatchSchedule s = wan_schedule(static_cast<int64_t>(params[0].item<double>()), params[1].item<double>(),
                                       params[2].item<double>());
    EXPECT(at::equal(s.sigmas, G(p + "sigmas")));
    EXPECT(at::equal(s.timesteps, G(p + "timesteps")));
    EXPECT(at::equal(s.step(G("step.x"), G("step.v"), 0), G(p + "step_first")));
    EXPECT(at::equal(s.step(G("step.x"), G("step.v"), s.steps() - 1), G(p + "step_last")));
  }
}

TEST(sampler_schedule_rejects_bad_parameters) {
  EXPECT_THROWS(wan_schedule(0, 1.0, 5.0), "num_inference_steps must be at least 1, got 0");
  EXPECT_THROWS(wan_schedule(10, 0.0, 5.0), "denoising_strength must be in (0, 1]");
  EXPECT_THROWS(wan_schedule(10, 1.0, -1.0), "sigma_shift must be positive");
}

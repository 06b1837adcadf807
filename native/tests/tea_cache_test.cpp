// TeaCache against DiffSynth-Studio's (test/golden/make_tea_cache.py, PyTorch 2.13): the same
// steps skipped and the latents within 1e-4, on the tiny model with its time_projection bias
// raised by 4 (so t_mod moves by a few percent a step, as a trained model's does; the golden
// script makes the same change); and the same result on device groups.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "pipeline/t2v.h"
#include "pipeline/tea_cache.h"
#include "test.h"

using namespace wan;

namespace {
const std::string kGolden = "/test/golden/data/tea_cache.safetensors";

LoadedModel smooth_time_model() {
  LoadedModel m = load_model(wantest::tiny_model(), true);
  const SafetensorsHeader h = read_safetensors_header(wantest::source_dir() + kGolden);
  const double bias = nlohmann::json::parse(h.metadata.at("time_bias")).get<double>();
  StoredTensor& b = m.dit.at("time_projection.1.bias");
  b = stored(to_float32(b) + bias);
  return m;
}

struct Case {
  T2VRequest request;
  at::Tensor latents, skipped;
};
std::vector<std::pair<std::string, Case>> golden_cases() {
  const std::string path = wantest::source_dir() + kGolden;
  const TensorMap g = load_safetensors(path, false);
  const SafetensorsHeader h = read_safetensors_header(path);
  std::vector<std::pair<std::string, Case>> out;
  for (const auto& name : nlohmann::json::parse(h.metadata.at("cases"))) {
    const std::string n = name.get<std::string>();
    Case c;
    c.request = wantest::golden_request(g, n, h.metadata.at(n));
    c.latents = g.at(n + ".latents").data;
    c.skipped = g.at(n + ".skipped").data;
    out.emplace_back(n, c);
  }
  return out;
}

std::vector<int64_t> skipped_steps(const T2VResult& r) {
  return r.timings.value("tea_cache_skipped_steps", nlohmann::json::array()).get<std::vector<int64_t>>();
}
std::vector<int64_t> skipped_in(const at::Tensor& flags) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < flags.numel(); ++i)
    if (flags[i].item<int64_t>() != 0) v.push_back(i);
  return v;
}
}  // namespace

TEST(tea_cache_skips_the_steps_diffsynth_skips_and_matches_its_latents) {
  const T2VEngine e(smooth_time_model(), {});
  for (const auto& [name, c] : golden_cases()) {
    const T2VResult out = e.generate(c.request);
    const double lat = wantest::rel_l2(out.latents, c.latents);
    const std::vector<int64_t> got = skipped_steps(out), want = skipped_in(c.skipped);
    std::printf("     tea cache %-9s %zu of %lld steps skipped (DiffSynth: %zu), latents rel L2 %.2e\n", name.c_str(),
                got.size(), (long long)c.request.num_inference_steps, want.size(), lat);
    EXPECT(got == want && !got.empty() && int64_t(got.size()) < c.request.num_inference_steps - 2);
    EXPECT(lat <= 1e-4);
    // Off, every step computes and the result moves: the skipping is what the golden data shows.
    T2VRequest off = c.request;
    off.tea_cache_l1_thresh = 0, off.tea_cache_model_id.clear();
    const T2VResult full = e.generate(off);
    EXPECT(!full.timings.contains("tea_cache_skipped_steps") && wantest::rel_l2(full.latents, c.latents) > 1e-3);
  }
}

TEST(tea_cache_on_device_groups_gives_the_one_rank_result) {
  // Every rank keeps its own residual per branch and the whole group skips the same steps: the
  // latents equal one rank's, as without TeaCache (Ulysses, ring, and CFG-parallel halves).
  const auto cases = golden_cases();
  const Case& c = cases.front().second;  // with CFG
  const at::Tensor one = T2VEngine(smooth_time_model(), {}).generate(c.request).latents;
  struct Layout {
    const char* devices;
    int ulysses, ring;
    bool cfg_parallel;
  } layouts[] = {{"cpu:0-1", 2, 1, false}, {"cpu:0-1", 1, 2, false}, {"cpu:0-3", 2, 1, true}};
  for (const Layout& l : layouts) {
    ParallelOptions p;
    p.devices = l.devices, p.ulysses = l.ulysses, p.ring = l.ring, p.cfg_parallel = l.cfg_parallel, p.timeout_s = 60;
    const T2VResult r = T2VEngine(smooth_time_model(), p).generate(c.request);
    const double e = wantest::rel_l2(r.latents, one);
    std::printf("     %s ulysses %d ring %d%s: rel L2 vs one rank %.2e\n", l.devices, l.ulysses, l.ring,
                l.cfg_parallel ? " cfg-parallel" : "", e);
    EXPECT(skipped_steps(r) == skipped_in(c.skipped) && e < 1e-5);
  }
}

TEST(tea_cache_parameters_are_checked_before_any_compute) {
  const T2VEngine e(wantest::tiny_model(), {});
  T2VRequest r = wantest::tiny_request(32, 32, 1, 4);
  r.tea_cache_l1_thresh = 0.1;  // the tiny DiT fits no calibration
  EXPECT_ERROR(e.validate(r), "tea_cache_model_id", "dim 256", "Wan2.1-T2V-1.3B, Wan2.1-T2V-14B");
  r.tea_cache_model_id = "Wan2.1-I2V-14B-480P";
  EXPECT_ERROR(e.validate(r), "tea_cache_model_id must be one of", "got 'Wan2.1-I2V-14B-480P'");
  r.tea_cache_l1_thresh = -0.5, r.tea_cache_model_id = "Wan2.1-T2V-1.3B";
  EXPECT_ERROR(e.validate(r), "tea_cache_l1_thresh must be between 0 (off) and 10, got -0.5");
  r.tea_cache_l1_thresh = 0;
  EXPECT_ERROR(e.validate(r), "tea_cache_model_id 'Wan2.1-T2V-1.3B' is given without tea_cache_l1_thresh");
  // The real dims pick their calibration.
  EXPECT(tea_cache_model(preset_arch("1.3B").dit, "") == "Wan2.1-T2V-1.3B");
  EXPECT(tea_cache_model(preset_arch("14B").dit, "") == "Wan2.1-T2V-14B");
}

TEST(memory_model_counts_tea_cache_residuals) {
  // 1.3B at 480p, one GPU: a [32760, 1536] float32 residual per CFG branch, 201 MB each.
  const ModelArch a = preset_arch("1.3B");
  MemoryPlanOptions o;
  o.gpu = true;
  const MemoryPlan off = plan_memory(a, o);
  o.block_residuals = 2;
  const MemoryPlan on = plan_memory(a, o);
  EXPECT(on.dit_activations - off.dit_activations == 2 * int64_t(32760) * 1536 * 4);
  // The engine asks for two with CFG, one without (or on a CFG-parallel half).
  const T2VEngine e(smooth_time_model(), {});
  T2VRequest r = golden_cases().front().second.request;
  const int64_t L = (r.num_frames - 1) / 4 + 1, tokens = L * (r.height / 16) * (r.width / 16), D = e.model().arch.dit.dim;
  T2VRequest plain = r;
  plain.tea_cache_l1_thresh = 0, plain.tea_cache_model_id.clear();
  EXPECT(e.memory_plan(r).dit_activations - e.memory_plan(plain).dit_activations == 2 * tokens * D * 4);
  r.cfg_scale = plain.cfg_scale = 1.0;
  EXPECT(e.memory_plan(r).dit_activations - e.memory_plan(plain).dit_activations == tokens * D * 4);
}

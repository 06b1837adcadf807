// Custom and few-step schedules: explicit timestep lists against LightX2V's step-distill
// scheduler, and a 4-step cfg-1 run against DiffSynth-Studio's loop on the tiny model
// (test/golden/make_schedule.py, PyTorch 2.13).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "formats/safetensors.h"
#include "pipeline/flow_match.h"
#include "pipeline/request.h"
#include "pipeline/t2v.h"
#include "golden.h"
#include "test.h"
#include "tools/generate_file.h"

using namespace wan;

namespace {
const at::Tensor& G(const std::string& name) { return wantest::golden_tensor("schedule", name); }
const T2VEngine& engine() { return wantest::tiny_engine(); }
std::vector<double> doubles(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
// The golden 4-step case: prompt, seed and size as DiffSynth ran them, no negative pass.
T2VRequest four_step_request() {
  T2VRequest r;
  r.prompt_ids = G("four_step_cfg1.prompt_ids"), r.prompt_mask = G("four_step_cfg1.prompt_mask");
  r.seed = 11, r.height = 64, r.width = 64, r.num_frames = 5;
  r.num_inference_steps = 4, r.cfg_scale = 1.0, r.sigma_shift = 5.0;
  return r;
}
}  // namespace

TEST(schedule_timestep_list_matches_lightx2v_bit_for_bit) {
  const int lists = std::stoi(read_safetensors_header(wantest::golden_path("schedule")).metadata.at("lists"));
  EXPECT(lists >= 4);
  for (int i = 0; i < lists; ++i) {
    const std::string p = "lightx2v." + std::to_string(i) + ".";
    const FlowMatchSchedule s = listed_schedule(doubles(G(p + "list")), G(p + "shift")[0].item<double>());
    EXPECT(at::equal(s.sigmas, G(p + "sigmas")));
    EXPECT(at::equal(s.timesteps, G(p + "timesteps")));
  }
}

TEST(schedule_lightx2v_four_steps_equal_diffsynth_four_steps) {
  for (double shift : {1.0, 3.0, 5.0, 8.0}) {
    const FlowMatchSchedule listed = listed_schedule({1000, 750, 500, 250}, shift);
    const FlowMatchSchedule even = wan_schedule(4, 1.0, shift);
    EXPECT(at::equal(listed.sigmas, even.sigmas));
    EXPECT(at::equal(listed.timesteps, even.timesteps));
  }
  EXPECT(at::equal(wan_schedule(4, 1.0, 5.0).sigmas, G("four_step_cfg1.sigmas")));
}

TEST(schedule_four_step_cfg1_run_matches_diffsynth) {
  const T2VResult out = engine().generate(four_step_request());
  const double lat = wantest::rel_l2(out.latents, G("four_step_cfg1.latents"));
  std::printf("     4-step cfg 1 latents rel L2 %.2e\n", lat);
  EXPECT(lat <= 1e-5);
}

TEST(schedule_explicit_timesteps_give_the_computed_schedules_latents) {
  const T2VRequest computed = four_step_request();
  T2VRequest listed = computed;
  listed.timesteps = {1000, 750, 500, 250};
  EXPECT(at::equal(engine().generate(listed).latents, engine().generate(computed).latents));
  // TeaCache decides its skips from the listed timesteps as from the computed ones.
  listed.tea_cache_l1_thresh = 0.3, listed.tea_cache_model_id = "Wan2.1-T2V-1.3B";
  T2VRequest tea = computed;
  tea.tea_cache_l1_thresh = 0.3, tea.tea_cache_model_id = "Wan2.1-T2V-1.3B";
  const T2VResult a = engine().generate(listed), b = engine().generate(tea);
  EXPECT(a.timings["tea_cache_skipped_steps"] == b.timings["tea_cache_skipped_steps"]);
  EXPECT(at::equal(a.latents, b.latents));
}

TEST(schedule_request_json_carries_the_timesteps) {
  T2VRequest r = four_step_request();
  r.timesteps = {1000, 937.5, 500, 1e-3};
  const T2VRequest back = request_from_json(request_to_json(r));
  EXPECT(back.timesteps == r.timesteps);
  EXPECT(back.num_inference_steps == 4);
  // The list alone sets the number of steps; a numInferenceSteps beside it must agree.
  EXPECT(request_from_json({{"timesteps", {900, 100}}}, false).num_inference_steps == 2);
  EXPECT_ERROR(request_from_json({{"timesteps", {900, 100}}, {"numInferenceSteps", 3}}, false),
               "timesteps lists 2 steps but numInferenceSteps is 3");
  EXPECT_ERROR(request_from_json({{"timesteps", {900, "x"}}}, false), "timesteps[1]");
  EXPECT_ERROR(request_from_json({{"timesteps", 900}}, false), "timesteps must be an array");
}

TEST(schedule_bad_timestep_lists_are_refused_naming_the_first_offending_index) {
  auto field_of = [](const T2VRequest& r) {
    try {
      engine().validate(r);
    } catch (const ParamError& e) {
      return e.field + ": " + e.what();
    }
    return std::string("accepted");
  };
  T2VRequest r = four_step_request();
  auto with = [&](std::vector<double> t) {
    T2VRequest x = r;
    x.timesteps = t;
    x.num_inference_steps = int64_t(t.size());
    return field_of(x);
  };
  EXPECT(with({1000, 750, 750, 250}).find("timesteps: timesteps[2] = 750 is not below timesteps[1] = 750") == 0);
  EXPECT(with({1000, 1200, 250}).find("timesteps: timesteps[1] = 1200 is outside (0, 1000]") == 0);
  EXPECT(with({1001, 500}).find("timesteps[0] = 1001 is outside (0, 1000]") != std::string::npos);
  EXPECT(with({500, 0}).find("timesteps[1] = 0 is outside (0, 1000]") != std::string::npos);
  EXPECT(with({500, std::nan("")}).find("timesteps[1] = nan is outside") != std::string::npos);
  std::vector<double> long_list;
  for (int i = 0; i < 1001; ++i) long_list.push_back(1000 - i * 0.5);
  EXPECT(with(long_list).find("timesteps lists 1001 timesteps, at most 1000") != std::string::npos);
  T2VRequest x = r;
  x.timesteps = {1000, 500}, x.num_inference_steps = 2, x.denoising_strength = 0.5;
  EXPECT(field_of(x).find("timesteps: with timesteps the first one sets where the schedule starts") == 0);
  EXPECT(with({1000, 750, 500, 250}) == "accepted");
}

TEST(schedule_wanlab_engine_timesteps_replace_the_request_files_schedule) {
  T2VRequest r = four_step_request();
  r.num_inference_steps = 9;  // replaced by the four listed timesteps
  const std::string path = wantest::scratch("schedule-request.json");
  wantest::write_bytes(path, request_to_json(r).dump());
  GenerateFileOptions o;
  o.model_dir = wantest::tiny_model(), o.request_path = path, o.engine.parallel.devices = "cpu";
  o.timesteps = {1000, 750, 500, 250};
  o.save_tensors = wantest::scratch("schedule-listed.safetensors");
  const nlohmann::json timings = generate_from_file(o);
  EXPECT(timings["step_s"].size() == 4);
  EXPECT(at::equal(load_safetensors(o.save_tensors, false).at("latents").data, engine().generate(four_step_request()).latents));
}

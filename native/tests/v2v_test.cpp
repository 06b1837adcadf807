// Video-to-video against DiffSynth-Studio's WanVideoPipeline with input_video and
// denoising_strength (test/golden/make_v2v.py, PyTorch 2.13) on the tiny model: the input's
// latents noised to the first sigma, the shortened schedule, the text-to-video loop and decode.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {
const std::string kGolden = "/test/golden/data/v2v.safetensors";
}

TEST(v2v_matches_diffsynth_input_video_and_denoising_strength) {
  const std::string path = wantest::source_dir() + kGolden;
  const TensorMap g = load_safetensors(path, false);
  const SafetensorsHeader h = read_safetensors_header(path);
  const T2VEngine e(wantest::tiny_model());
  for (const auto& c : nlohmann::json::parse(h.metadata.at("cases"))) {
    const std::string n = c.get<std::string>();
    const nlohmann::json p = nlohmann::json::parse(h.metadata.at(n));
    T2VRequest r;
    r.prompt_ids = g.at(n + ".prompt_ids").data, r.prompt_mask = g.at(n + ".prompt_mask").data;
    r.negative_ids = g.at(n + ".negative_ids").data, r.negative_mask = g.at(n + ".negative_mask").data;
    r.seed = std::stoull(p["seed"].get<std::string>());
    r.height = p["height"], r.width = p["width"], r.num_frames = p["num_frames"];
    r.num_inference_steps = p["num_inference_steps"];
    r.cfg_scale = p["cfg_scale"], r.sigma_shift = p["sigma_shift"];
    r.tiled = p["tiled"];
    if (r.tiled) r.tile_size = {p["tile_size"][0], p["tile_size"][1]}, r.tile_stride = {p["tile_stride"][0], p["tile_stride"][1]};
    r.input_video = g.at(n + ".input_video").data;
    r.denoising_strength = p["denoising_strength"];
    const T2VResult out = e.generate(r);
    const double lat = wantest::rel_l2(out.latents, g.at(n + ".latents").data);
    const double vid = wantest::rel_l2(out.video, g.at(n + ".video").data);
    std::printf("     v2v %-17s strength %.1f: latents %.2e  video %.2e  (video encode %.3f s)\n", n.c_str(),
                r.denoising_strength, lat, vid, out.timings["video_encode_s"].get<double>());
    EXPECT(lat <= 1e-4 && vid <= 1e-3);
    // The same request without the video is text-to-video from noise: far from it.
    T2VRequest t2v = r;
    t2v.input_video = at::Tensor(), t2v.denoising_strength = 1.0;
    EXPECT(wantest::rel_l2(e.generate(t2v).latents, g.at(n + ".latents").data) > 0.05);
  }
}

TEST(v2v_parameters_are_checked_before_any_compute) {
  const T2VEngine e(wantest::tiny_model());
  T2VRequest r = wantest::tiny_request(32, 48, 5, 2);
  r.denoising_strength = 0.5;
  EXPECT_ERROR(e.validate(r), "denoising_strength 0.5 < 1 starts from a noised input video; give input_video");
  r.input_video = at::zeros({3, 5, 32, 32});
  EXPECT_ERROR(e.validate(r), "input_video must be [3, num_frames, height, width] = [3, 5, 32, 48], got [3, 5, 32, 32]");
  r.input_video = at::zeros({3, 5, 32, 48});
  r.input_video[0][0][0][0] = NAN;
  EXPECT_ERROR(e.validate(r), "input_video holds values that are not finite");
  r.input_video = at::zeros({3, 5, 32, 48});
  r.denoising_strength = 0;
  EXPECT_ERROR(e.validate(r), "denoising_strength must be in (0, 1], got 0");
  r.denoising_strength = 1.0;
  e.validate(r);  // strength 1: the video's latents are all noise at sigma 1, yet it is allowed, as in DiffSynth
  // The plan counts the encoder's activations in the encode stage.
  const MemoryPlan with = e.memory_plan(r);
  r.input_video = at::Tensor();
  const MemoryPlan without = e.memory_plan(r);
  EXPECT(with.vae_encode_activations == with.vae_activations && without.vae_encode_activations == 0);
  EXPECT(with.encode() >= without.encode());
}

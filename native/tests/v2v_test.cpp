// Video-to-video against DiffSynth-Studio's WanVideoPipeline with input_video and
// denoising_strength (test/golden/make_v2v.py, PyTorch 2.13) on the tiny model: the input's
// latents noised to the first sigma, the shortened schedule, the text-to-video loop and decode.
#include <atomic>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "parallel/process_group.h"
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
    T2VRequest r = wantest::golden_request(g, n, h.metadata.at(n));
    r.input_video = g.at(n + ".input_video").data;
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

TEST(v2v_on_two_nodes_sends_the_encoded_input_to_the_follower) {
  // Node 0 encodes the input video and publishes its latents with the request; node 1 follows
  // without the video. Both run the group's steps and give one node's result.
  const std::string path = wantest::source_dir() + kGolden;
  const TensorMap g = load_safetensors(path, false);
  const std::string n = "cfg_strength_0.7";
  T2VRequest r = wantest::golden_request(g, n, read_safetensors_header(path).metadata.at(n));
  r.input_video = g.at(n + ".input_video").data;

  const uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  const std::string model = wantest::tiny_model();  // made once, before the two nodes open it
  std::unique_ptr<T2VEngine> nodes[2];
  std::array<std::string, 2> err;
  err = wantest::on_two_nodes([&](int k) {
    ParallelOptions o;
    o.devices = "cpu:0-1", o.ulysses = 2, o.ring = 2, o.timeout_s = 30;
    o.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), o.nnodes = 2, o.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, o);
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  at::Tensor latents;
  std::vector<std::string> followed;
  std::atomic<bool> stop{false};
  err = wantest::on_two_nodes([&](int k) {
    if (k == 0) {
      latents = nodes[0]->generate(r).latents;
      nodes[0]->end_requests();
    } else {
      nodes[1]->follow(stop, [&](int64_t, const std::string& e) { followed.push_back(e); });
    }
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  const double e = wantest::rel_l2(latents, g.at(n + ".latents").data);
  std::printf("     2 nodes x 2 ranks, video-to-video: latents rel L2 vs DiffSynth %.2e (node 1 followed %zu request)\n", e,
              followed.size());
  EXPECT(followed.size() == 1 && followed[0].empty() && e <= 1e-4);
}

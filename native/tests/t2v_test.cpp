// Whole text-to-video generations against DiffSynth-Studio's loop on the tiny model
// (test/golden/make_t2v.py, PyTorch 2.13): noise exact, latents rel L2 <= 1e-4, video <= 1e-3.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "common/proc_status.h"
#include "pipeline/t2v.h"
#include "golden.h"
#include "test.h"

using namespace wan;

namespace {
const TensorMap& golden() { return wantest::golden("t2v"); }
const at::Tensor& G(const std::string& name) { return wantest::golden_tensor("t2v", name); }
const T2VEngine& engine() { return wantest::tiny_engine(); }
// A golden case's prompts with other parameters.
T2VRequest request_for(const std::string& name, const nlohmann::json& p) {
  return wantest::golden_request(golden(), name, p.dump());
}
}  // namespace

TEST(t2v_whole_generations_match_diffsynth) {
  SafetensorsHeader h = read_safetensors_header(wantest::golden_path("t2v"));
  auto cases = nlohmann::json::parse(h.metadata.at("cases"));
  EXPECT(cases.size() == 4);
  for (const auto& c : cases) {
    const std::string name = c.get<std::string>();
    T2VRequest r = wantest::golden_request(golden(), name, h.metadata.at(name));
    T2VResult out = engine().generate(r);
    EXPECT(at::equal(out.noise, G(name + ".noise")));
    double ctx = wantest::rel_l2(out.context, G(name + ".context"));
    double lat = wantest::rel_l2(out.latents, G(name + ".latents"));
    double vid = wantest::rel_l2(out.video, G(name + ".video"));
    std::printf("     t2v %-18s context %.2e  latents %.2e  video %.2e\n", name.c_str(), ctx, lat, vid);
    EXPECT(ctx <= 1e-4);
    EXPECT(lat <= 1e-4);
    EXPECT(vid <= 1e-3);
    EXPECT(out.video.min().item<float>() >= -1.0f && out.video.max().item<float>() <= 1.0f);
  }
}

TEST(t2v_progress_reports_every_step_and_chunk) {
  T2VRequest r = request_for("cfg1_single_frame", {{"seed", "1"}, {"height", 32}, {"width", 32}, {"num_frames", 5},
                                                   {"num_inference_steps", 3}, {"cfg_scale", 1.0},
                                                   {"sigma_shift", 5.0}, {"tiled", false}});
  int denoise = 0, decode = 0, encode = 0;
  engine().generate(r, [&](const T2VEvent& e) {
    if (e.stage == "denoise") {
      ++denoise;
      EXPECT(e.total == 3);
    }
    if (e.stage == "decode") ++decode;
    if (e.stage == "encode") ++encode;
  });
  EXPECT(denoise == 4);  // step 0 (start) .. 3
  EXPECT(decode == 2);   // one per latent frame
  EXPECT(encode == 2);
}

TEST(t2v_cancel_stops_at_a_step_boundary_and_the_engine_stays_usable) {
  T2VRequest r = request_for("cfg1_single_frame", {{"seed", "1"}, {"height", 32}, {"width", 32}, {"num_frames", 1},
                                                   {"num_inference_steps", 5}, {"cfg_scale", 1.0},
                                                   {"sigma_shift", 5.0}, {"tiled", false}});
  std::atomic<bool> cancel{false};
  bool thrown = false;
  try {
    engine().generate(r, [&](const T2VEvent& e) { if (e.stage == "denoise" && e.step == 2) cancel = true; }, &cancel);
  } catch (const Cancelled& e) {
    thrown = true;
    EXPECT(std::string(e.what()) == "cancelled at step 3/5");  // steps 1, 2 ran
  }
  EXPECT(thrown);
  cancel = false;
  T2VResult ok = engine().generate(r, {}, &cancel);
  EXPECT(ok.latents.defined());
}

TEST(t2v_bad_parameters_are_named_before_any_compute) {
  T2VRequest good = request_for("cfg1_single_frame", {{"seed", "1"}, {"height", 32}, {"width", 32}, {"num_frames", 1},
                                                      {"num_inference_steps", 1}, {"cfg_scale", 1.0},
                                                      {"sigma_shift", 5.0}, {"tiled", false}});
  T2VRequest r = good;
  r.height = 40;
  EXPECT_THROWS(engine().validate(r), "height must be a multiple of 16");
  r = good, r.num_frames = 4;
  EXPECT_THROWS(engine().validate(r), "num_frames must be 4k+1");
  r = good, r.num_inference_steps = 0;
  EXPECT_THROWS(engine().validate(r), "num_inference_steps must be between 1 and 1000, got 0");
  r = good, r.sigma_shift = 0;
  EXPECT_THROWS(engine().validate(r), "sigma_shift must be in (0, 100]");
  r = good, r.cfg_scale = 2.0, r.negative_ids = at::Tensor();
  EXPECT_THROWS(engine().validate(r), "negative prompt token ids and mask are required");
  r = good, r.prompt_ids = at::zeros({7}, at::kLong);
  EXPECT_THROWS(engine().validate(r), "prompt token ids must have shape [512]");
  r = good, r.tiled = true, r.tile_stride = {40, 4};
  EXPECT_THROWS(engine().validate(r), "stride <= size");
}

TEST(t2v_memory_budget_refuses_what_does_not_fit_before_any_compute) {
  T2VRequest small = request_for("cfg1_single_frame", {{"seed", "1"}, {"height", 32}, {"width", 32}, {"num_frames", 5},
                                                       {"num_inference_steps", 1}, {"cfg_scale", 1.0},
                                                       {"sigma_shift", 5.0}, {"tiled", false}});
  auto sized = [&](int64_t h, int64_t w, int64_t f) {
    T2VRequest r = small;
    r.height = h, r.width = w, r.num_frames = f;
    return r;
  };
  const T2VRequest smallest = sized(16, 16, 1), medium = sized(64, 64, 9), large = sized(480, 832, 81);
  // Without a budget nothing is refused, and the plan is the memory model's for this placement.
  EXPECT(engine().budget_problem(large).empty());
  MemoryPlanOptions o;
  o.height = 64, o.width = 64, o.num_frames = 9, o.bytes_per_value = 4;  // the CPU computes in float32
  const int64_t floor = engine().memory_plan(smallest).peak(), fits = engine().memory_plan(medium).peak();
  EXPECT(plan_memory(engine().model().arch, o).peak() == fits && fits > floor);

  // A budget below what the engine keeps whatever the request (weights, the smallest video) fails
  // the open, naming the parts.
  ComputeOptions c;
  c.budget_video = {64, 64, 9, false};
  c.memory_budget = floor - 1;
  EXPECT_ERROR(T2VEngine(wantest::tiny_model(), {}, c), "memory budget", "the weights this engine keeps on cpu need",
               "text encoder", "VAE", "try");
  c.memory_budget = 0;
  EXPECT_ERROR(T2VEngine(wantest::tiny_model(), {}, c), "memory budget must be positive");
  // A budget video over the budget opens (the note says so); such requests are refused.
  c.memory_budget = floor;
  EXPECT(T2VEngine(wantest::tiny_model(), {}, c).placement()["memory_budget_note"].get<std::string>().find(
             "64x64x9 predicted at 99.8 MB") != std::string::npos);

  c.memory_budget = fits;
  const T2VEngine e(wantest::tiny_model(), {}, c);
  EXPECT(e.placement()["memory_budget_bytes"] == fits);
  EXPECT(e.placement()["memory_budget_note"].get<std::string>().find("over it") == std::string::npos);
  // A request over the budget is refused by validate (generate's first step), naming what it
  // needs, the budget and what would fit; the engine then runs one that fits.
  EXPECT_ERROR(e.validate(sized(128, 128, 9)), "128x128x9 generation is predicted to need 360.0 MB on cpu",
               "over the budget of 99.8 MB", "fewer frames or a smaller size");
  EXPECT_ERROR(e.generate(large), "480x832x81 generation", "tiled decode (");
  const nlohmann::json report = e.memory_report(large);
  EXPECT(report["fits"] == false && report["budget_bytes"] == fits && report["device"] == "cpu");
  EXPECT(report["peak_bytes"].get<int64_t>() == e.memory_plan(large).peak());
  EXPECT(e.memory_report(medium)["fits"] == true && e.memory_report(medium)["problem"] == "");
  const T2VResult ok = e.generate(small);
  EXPECT(ok.video.size(1) == 5);
  const MemoryPlan p = e.memory_plan(small);
  EXPECT(ok.timings["predicted_peak_bytes"]["decode"]["cpu"] == p.decode());
  EXPECT(ok.timings["predicted_peak_bytes"]["denoise"]["cpu"] == p.denoise());

  // auto: on the CPU the host's available memory at load less 1 GB; a 4096x4096 untiled decode
  // (float32, hundreds of GB) is refused, the small request fits.
  c.memory_budget = kAutoBudget;
  const T2VEngine a(wantest::tiny_model(), {}, c);
  const int64_t budget = a.placement()["memory_budget_bytes"];
  EXPECT(budget > 0 && budget < meminfo_bytes("MemTotal:"));
  EXPECT(a.placement()["memory_budget_note"].get<std::string>().find("(auto: the host's available") != std::string::npos);
  EXPECT(a.budget_problem(small).empty());
  EXPECT_ERROR(a.validate(sized(4096, 4096, 81)), "4096x4096x81 generation is predicted to need", "tiled decode (");
}

TEST(t2v_memory_plan_counts_cpu_ranks_sharing_the_host) {
  // Two CPU ranks are threads of one host: their activations (and, sharded, their DiT shards) add
  // up in its memory, where a GPU group's ranks each have their own.
  ParallelOptions p;
  p.devices = "cpu:0-1", p.ulysses = 2, p.timeout_s = 60;
  ComputeOptions sharded;
  sharded.shard_weights = true;
  const T2VEngine group(wantest::tiny_model(), p), shards(wantest::tiny_model(), p, sharded);
  T2VRequest r;
  r.height = 64, r.width = 64, r.num_frames = 9;
  MemoryPlanOptions o;
  o.height = 64, o.width = 64, o.num_frames = 9, o.bytes_per_value = 4, o.sequence_parallel = 2;
  const MemoryPlan per_rank = plan_memory(group.model().arch, o);
  const MemoryPlan host = group.memory_plan(r);
  EXPECT(host.dit_activations == 2 * per_rank.dit_activations && host.dit_resident == per_rank.dit_resident);
  o.shard_weights = true;
  const MemoryPlan shard_rank = plan_memory(group.model().arch, o), shard_host = shards.memory_plan(r);
  EXPECT(shard_host.dit_resident == 2 * shard_rank.dit_resident && shard_host.dit_streamed == 2 * shard_rank.dit_streamed);
}

TEST(t2v_prompts_are_encoded_once_per_engine_and_reused) {
  // A seed sweep keeps its prompts: the second request takes both embeddings from the cache and
  // gives what an engine without the cache gives, bit for bit.
  ComputeOptions no_cache;
  no_cache.prompt_cache_bytes = 0;
  const T2VEngine cached(wantest::tiny_model()), plain(wantest::tiny_model(), {}, no_cache);
  const T2VRequest r1 = wantest::tiny_request(32, 32, 5, 2, 5.0, 1), r2 = wantest::tiny_request(32, 32, 5, 2, 5.0, 2);
  const T2VResult a = cached.generate(r1), b = cached.generate(r2);
  EXPECT(a.timings["encode_cached"] == 0 && b.timings["encode_cached"] == 2);
  const T2VResult pb = plain.generate(r2);
  EXPECT(pb.timings["encode_cached"] == 0 && plain.generate(r2).timings["encode_cached"] == 0);
  EXPECT(at::equal(b.context, pb.context) && at::equal(b.latents, pb.latents));
  std::printf("     encode: %.4f s encoded, %.4f s from the cache\n", a.timings["encode_s"].get<double>(),
              b.timings["encode_s"].get<double>());
  // A result's context is its own: changing it leaves the cache as it was.
  T2VResult c = cached.generate(r1);
  c.context.zero_();
  EXPECT(at::equal(cached.generate(r1).context, a.context));
  // A new negative prompt is encoded; the prompt still comes from the cache. CFG 1: one prompt.
  T2VRequest r3 = r1;
  r3.negative_ids = at::remainder(r1.negative_ids + 1, 380);
  EXPECT(cached.generate(r3).timings["encode_cached"] == 1);
  r3.cfg_scale = 1.0;
  EXPECT(cached.generate(r3).timings["encode_cached"] == 1);
  const PromptCache::Stats s = cached.prompt_cache_stats();
  EXPECT(s.entries == 3 && s.misses == 3 && s.hits == 8 && s.bytes == 3 * int64_t(a.context.nbytes()));
}

TEST(prompt_cache_drops_the_least_recently_used_beyond_its_capacity) {
  const at::Tensor e = at::zeros({4, 8});  // 128 bytes
  PromptCache cache(3 * int64_t(e.nbytes()));
  auto ids = [](int64_t k) { return at::full({6}, k, at::kLong); };
  const at::Tensor mask = at::ones({6}, at::kLong);
  for (int64_t k = 0; k < 3; ++k) cache.put(ids(k), mask, e + float(k));
  EXPECT(cache.find(ids(0), mask).defined());  // 0 is now the most recent: 1 goes first
  cache.put(ids(3), mask, e + 3.0f);
  EXPECT(!cache.find(ids(1), mask).defined());
  EXPECT(cache.find(ids(0), mask)[0][0].item<float>() == 0.0f && cache.find(ids(3), mask)[0][0].item<float>() == 3.0f);
  EXPECT(cache.find(ids(2), mask).defined());
  // The same ids under another mask are another prompt.
  EXPECT(!cache.find(ids(0), at::zeros({6}, at::kLong)).defined());
  EXPECT(cache.stats().entries == 3 && cache.stats().bytes == 3 * int64_t(e.nbytes()));
  // Larger than the whole capacity: not kept. Capacity 0: nothing kept, nothing counted.
  cache.put(ids(9), mask, at::zeros({100}));
  EXPECT(!cache.find(ids(9), mask).defined());
  PromptCache off(0);
  off.put(ids(0), mask, e);
  EXPECT(!off.find(ids(0), mask).defined() && off.stats().misses == 0);
}

// LoRAs on a loaded engine against DiffSynth-Studio's fused load_lora (test/golden/make_lora.py):
// every naming of the same LoRA, stacked with a second at 0.7 and -0.3, with CFG, on one rank and
// on a Ulysses group; DiffSynth's hot-loaded path; a 4-step cfg-1 (distilled-LoRA) run; the base
// model back bit for bit; bad files refused before any compute.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "checkpoint/lora.h"
#include "formats/safetensors.h"
#include "parallel/process_group.h"
#include "pipeline/t2v.h"
#include "golden.h"
#include "test.h"
#include "tools/generate_file.h"
#include "tools/inspect.h"

using namespace wan;

namespace {
const at::Tensor& G(const std::string& name) { return wantest::golden_tensor("lora", name); }
std::string lora_file(const std::string& name) {
  return wantest::source_dir() + "/test/golden/data/lora/" + name + ".safetensors";
}
// make_lora.py's case with `loras` (file name, scale).
T2VRequest lora_request(const std::vector<std::pair<std::string, double>>& loras) {
  T2VRequest r;
  r.prompt_ids = G("prompt_ids"), r.prompt_mask = G("prompt_mask");
  r.negative_ids = G("negative_ids"), r.negative_mask = G("negative_mask");
  r.seed = 11, r.height = 48, r.width = 64, r.num_frames = 5, r.num_inference_steps = 3;
  r.cfg_scale = 5.0, r.sigma_shift = 5.0;
  for (const auto& [name, scale] : loras) r.loras.push_back({name[0] == '/' ? name : lora_file(name), scale, true});
  return r;
}
const T2VEngine& engine() { return wantest::tiny_engine(); }
at::Tensor latents(const T2VEngine& e, const T2VRequest& r) { return e.generate(r).latents; }
// A LoRA file of `tensors` under the scratch directory.
std::string write_lora(const std::string& name, const TensorMap& tensors) {
  const std::string p = wantest::scratch(name);
  save_safetensors(p, tensors);
  return p;
}
StoredTensor f32(const at::Tensor& t) { return stored(t.to(at::kFloat).contiguous()); }
}  // namespace

TEST(lora_every_naming_stacked_at_0_7_and_minus_0_3_matches_diffsynth_fused_load_lora) {
  for (const char* naming : {"lora1_kohya_comfy", "lora1_peft", "lora1_peft_default", "lora1_diffusers", "lora1_kohya_flat"}) {
    const double d = wantest::rel_l2(latents(engine(), lora_request({{naming, 0.7}, {"lora2_peft", -0.3}})), G("fused.latents"));
    std::printf("     %s at 0.7 + lora2_peft at -0.3 vs DiffSynth fused: latents rel L2 %.2e\n", naming, d);
    if (!(d < 1e-5)) throw wantest::Failure{std::string(naming) + ": rel L2 " + std::to_string(d) + " > 1e-5"};
  }
  // Full-weight differences (diff, diff_b, a norm's diff) as ComfyUI applies them.
  const double diff = wantest::rel_l2(latents(engine(), lora_request({{"lora1_diff", 0.7}, {"lora2_peft", -0.3}})), G("diff.latents"));
  std::printf("     lora1_diff (diff, diff_b) vs DiffSynth fused: latents rel L2 %.2e\n", diff);
  EXPECT(diff < 1e-5);
  // The LoRAs do move the result (the comparison above could not pass on the base model).
  EXPECT(wantest::rel_l2(G("fused.latents"), G("base.latents")) > 1e-2);
}

TEST(lora_merged_matches_diffsynth_hot_loaded_path_within_1e_5) {
  // DiffSynth's hot-loaded LoRA (x @ A.T @ B.T added at each forward, base weights untouched) gives
  // the same video as its fused load_lora and wanlab's merged working copies.
  const at::Tensor got = latents(engine(), lora_request({{"lora1_kohya_comfy", 0.7}, {"lora2_peft", -0.3}}));
  std::printf("     vs DiffSynth hot-loaded: latents rel L2 %.2e\n", wantest::rel_l2(got, G("hot.latents")));
  EXPECT(wantest::rel_l2(got, G("hot.latents")) < 1e-5);
  EXPECT(wantest::rel_l2(G("hot.latents"), G("base.latents")) > 1e-2);
}

TEST(lora_4_step_cfg_1_distilled_run_matches_diffsynth_fused_and_hot_loaded) {
  // The step-distilled LoRA use: 4 steps, cfg_scale 1 (no negative-prompt pass).
  T2VRequest r = lora_request({{"lora1_kohya_comfy", 0.7}, {"lora2_peft", -0.3}});
  r.num_inference_steps = 4, r.cfg_scale = 1.0;
  const at::Tensor got = latents(engine(), r);
  std::printf("     4 steps, cfg 1 vs DiffSynth fused / hot-loaded: latents rel L2 %.2e / %.2e\n",
              wantest::rel_l2(got, G("distilled.latents")), wantest::rel_l2(got, G("distilled_hot.latents")));
  EXPECT(wantest::rel_l2(got, G("distilled.latents")) < 1e-5);
  EXPECT(wantest::rel_l2(got, G("distilled_hot.latents")) < 1e-5);
  r.loras.clear();
  EXPECT(wantest::rel_l2(latents(engine(), r), G("distilled_base.latents")) < 1e-5);
  EXPECT(wantest::rel_l2(G("distilled.latents"), G("distilled_base.latents")) > 1e-2);
}

TEST(lora_removed_gives_the_base_model_bit_for_bit_and_the_same_request_twice_is_identical) {
  const T2VEngine fresh(wantest::tiny_model());
  const at::Tensor base = latents(fresh, lora_request({}));
  EXPECT(wantest::rel_l2(base, G("base.latents")) < 1e-5);
  const T2VRequest with = lora_request({{"lora1_peft", 0.7}, {"lora2_peft", -0.3}});
  const at::Tensor a = latents(engine(), with), b = latents(engine(), with);
  EXPECT(at::equal(a, b));
  const nlohmann::json on = engine().loras();
  EXPECT(on["loras"].size() == 2 && on["loras"][0]["scale"] == 0.7 && on["working_bytes"].get<int64_t>() > 0);
  EXPECT(on["loras"][0]["fingerprint"] == lora_fingerprint(lora_file("lora1_peft")));
  // Switching to another scale rebuilds the copies from the base, not from the last set.
  const at::Tensor c = latents(engine(), lora_request({{"lora1_peft", 0.35}}));
  EXPECT(!at::equal(c, a));
  EXPECT(at::equal(latents(engine(), lora_request({})), base));
  EXPECT(engine().loras()["loras"].empty() && engine().loras()["working_bytes"] == 0);
  EXPECT(at::equal(latents(engine(), with), a));
}

TEST(lora_on_ulysses_ring_and_cfg_parallel_groups_matches_one_rank) {
  const T2VRequest r = lora_request({{"lora1_kohya_comfy", 0.7}, {"lora2_peft", -0.3}});
  const at::Tensor one = latents(engine(), r);
  struct Layout {
    const char* name;
    int ulysses, ring;
    bool cfg;
  };
  for (const Layout& l : {Layout{"ulysses 2", 2, 1, false}, Layout{"ring 2", 1, 2, false}, Layout{"cfg parallel", 1, 1, true}}) {
    ParallelOptions p;
    p.devices = "cpu:0-1", p.ulysses = l.ulysses, p.ring = l.ring, p.cfg_parallel = l.cfg, p.timeout_s = 60;
    const T2VEngine group(wantest::tiny_model(), p);
    const at::Tensor two = latents(group, r);
    // The group's attention sums in another order: the parallel tests' bound.
    std::printf("     %s vs one rank: latents rel L2 %.2e\n", l.name, wantest::rel_l2(two, one));
    EXPECT(wantest::rel_l2(two, one) < 1e-5);
    EXPECT(wantest::rel_l2(two, G("fused.latents")) < 1e-5);
    // Off again: the group's base model, as a fresh group gives it.
    EXPECT(at::equal(latents(group, lora_request({})), latents(T2VEngine(wantest::tiny_model(), p), lora_request({}))));
  }
}

TEST(lora_text_encoder_keys_are_refused_by_name_and_skipped_with_strict_false) {
  const T2VEngine& e = engine();
  // LoRA 2 plus UMT5 terms in three namings: official / DiffSynth, diffusers' pipeline, kohya.
  TensorMap te = load_safetensors(lora_file("lora2_peft"), false);
  for (const char* m : {"blocks.0.attn.q", "text_encoder.encoder.block.0.layer.0.SelfAttention.q",
                        "lora_te_encoder_block_0_layer_0_SelfAttention_q"}) {
    te[std::string(m) + ".lora_A.weight"] = f32(at::ones({2, 64}));
    te[std::string(m) + ".lora_B.weight"] = f32(at::ones({64, 2}));
  }
  const std::string path = write_lora("text_encoder.safetensors", te);
  EXPECT_ERROR(e.validate(lora_request({{path, 1.0}})), path, "blocks.0.attn.q.lora_A.weight", "text-encoder (UMT5) key",
               "DiT only");
  // strict false: the DiT terms alone, the six UMT5 keys listed as skipped.
  T2VRequest loose = lora_request({});
  loose.loras.push_back({path, -0.3, false});
  e.validate(loose);
  const at::Tensor got = latents(e, loose);
  const nlohmann::json skipped = e.loras()["loras"][0]["skipped"];
  EXPECT(at::equal(got, latents(e, lora_request({{"lora2_peft", -0.3}}))));
  EXPECT(skipped.size() == 6);
  for (const auto& k : skipped) EXPECT(k.get<std::string>().find("text-encoder (UMT5) key") != std::string::npos);
}

TEST(lora_bad_files_and_scales_are_refused_before_compute_naming_the_file_and_key) {
  const T2VEngine& e = engine();
  const at::Tensor base = latents(e, lora_request({}));
  const TensorMap good = load_safetensors(lora_file("lora2_peft"), false);
  // A LoRA for a bigger model (the 14B's dim 5120 on a DiT of dim 256).
  const std::string big = write_lora("big.safetensors", {{"diffusion_model.blocks.0.self_attn.q.lora_up.weight", f32(at::ones({5120, 1}))},
                                                         {"diffusion_model.blocks.0.self_attn.q.lora_down.weight", f32(at::ones({1, 5120}))}});
  EXPECT_ERROR(e.validate(lora_request({{big, 1.0}})), big, "blocks.0.self_attn.q.lora_up.weight", "another model size");
  // Ranks that disagree between lora_B and lora_A.
  const std::string ranks = write_lora("ranks.safetensors", {{"blocks.0.self_attn.q.lora_B.weight", f32(at::ones({256, 4}))},
                                                             {"blocks.0.self_attn.q.lora_A.weight", f32(at::ones({3, 256}))}});
  EXPECT_ERROR(e.validate(lora_request({{ranks, 1.0}})), ranks, "rank 4", "rank 3", "ranks disagree");
  // A key that matches no weight (block 7 of a 2-block DiT), in a file that is otherwise good.
  TensorMap extra = good;
  extra["blocks.7.self_attn.q.lora_A.weight"] = f32(at::ones({2, 256}));
  extra["blocks.7.self_attn.q.lora_B.weight"] = f32(at::ones({256, 2}));
  const std::string stray = write_lora("stray.safetensors", extra);
  EXPECT_ERROR(e.validate(lora_request({{stray, 1.0}})), stray, "blocks.7.self_attn.q.lora_A.weight", "matches no weight");
  // No LoRA keys at all (a checkpoint given as a LoRA).
  const std::string plain = write_lora("plain.safetensors", {{"blocks.0.self_attn.q.weight", f32(at::ones({256, 256}))}});
  EXPECT_ERROR(e.validate(lora_request({{plain, 1.0}})), plain, "holds no LoRA keys");
  // A truncated file.
  const std::string cut = wantest::scratch("cut.safetensors");
  std::filesystem::copy_file(lora_file("lora2_peft"), cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
  EXPECT_ERROR(e.validate(lora_request({{cut, 1.0}})), cut, "truncated");
  // NaN values, a NaN scale, a missing file.
  TensorMap nan = good;
  nan.begin()->second = f32(at::full(nan.begin()->second.data.sizes(), std::numeric_limits<float>::quiet_NaN()));
  const std::string nanf = write_lora("nan.safetensors", nan);
  EXPECT_ERROR(e.validate(lora_request({{nanf, 1.0}})), nanf, "NaN");
  EXPECT_ERROR(e.validate(lora_request({{"lora2_peft", std::nan("")}})), "loras[0].scale", "finite");
  EXPECT_ERROR(e.validate(lora_request({{"/no/such/lora.safetensors", 1.0}})), "/no/such/lora.safetensors", "does not exist");
  // generate refuses the same way, and the engine is still the base model.
  EXPECT_ERROR(e.generate(lora_request({{big, 1.0}})), "another model size");
  EXPECT(at::equal(latents(e, lora_request({})), base));
  // strict: false skips the stray key, reports it, and applies the rest: as the good file.
  T2VRequest lenient = lora_request({{stray, -0.3}});
  lenient.loras[0].strict = false;
  const at::Tensor skipped = latents(e, lenient);
  EXPECT(e.loras()["loras"][0]["skipped"].size() == 2);
  EXPECT(at::equal(skipped, latents(e, lora_request({{"lora2_peft", -0.3}}))));
  // Request JSON: loras round-trip, and a bad entry names the field.
  const T2VRequest back = request_from_json(request_to_json(lenient));
  EXPECT(back.loras.size() == 1 && back.loras[0].path == stray && back.loras[0].scale == -0.3 && !back.loras[0].strict);
  EXPECT_ERROR(request_from_json({{"promptIds", {1}}, {"promptMask", {1}}, {"loras", {{{"scale", 1}}}}}), "loras[0] has no path");
}

TEST(lora_on_weights_sharded_across_a_ulysses_group_matches_one_rank_and_restores_the_shards) {
  ParallelOptions p;
  p.devices = "cpu:0-1", p.ulysses = 2, p.timeout_s = 60;
  ComputeOptions c;
  c.shard_weights = true;
  const T2VEngine sharded(wantest::tiny_model(), p, c);
  const at::Tensor base = latents(sharded, lora_request({}));
  const T2VRequest r = lora_request({{"lora1_diff", 0.7}, {"lora2_peft", -0.3}});
  const at::Tensor with = latents(sharded, r);
  std::printf("     sharded weights vs one rank: latents rel L2 %.2e\n", wantest::rel_l2(with, latents(engine(), r)));
  EXPECT(wantest::rel_l2(with, latents(engine(), r)) < 1e-5);
  EXPECT(wantest::rel_l2(with, G("diff.latents")) < 1e-5);
  // Each rank copies its part of each touched block (here both, half of each in float32) and the
  // whole of a touched weight outside the blocks (head.head [64, 256]): what the memory plan
  // counts for the two CPU ranks, each holding a sharded DiT.
  const DitArch& a = sharded.model().arch.dit;
  const int64_t part = sharded.loras()["working_bytes"].get<int64_t>();
  EXPECT(part == 2 * (dit_block_params(a).total * 4 / 2) + a.out_dim * 4 * a.dim * 4);
  EXPECT(2 * part == sharded.memory_plan(r).dit_lora);
  EXPECT(at::equal(latents(sharded, lora_request({})), base));
}

TEST(lora_wanlab_engine_generate_adds_its_lora_flags_to_the_request_file) {
  const std::string req = wantest::scratch("lora-request.json"), out = wantest::scratch("lora-out.safetensors");
  {
    FILE* f = std::fopen(req.c_str(), "w");
    const std::string text = request_to_json(lora_request({{"lora1_kohya_flat", 0.7}})).dump();
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  GenerateFileOptions o;
  o.model_dir = wantest::tiny_model(), o.request_path = req, o.save_tensors = out;
  o.loras = {{lora_file("lora2_peft"), -0.3, true}};
  const nlohmann::json timings = generate_from_file(o);
  EXPECT(timings["placement"]["dit_loras"]["loras"].size() == 2);
  EXPECT(wantest::rel_l2(load_safetensors(out, false).at("latents").data, G("fused.latents")) < 1e-5);
}

TEST(lora_working_copies_are_counted_by_the_memory_plan_and_match_what_the_dit_holds) {
  const T2VRequest plain = lora_request({}), with = lora_request({{"lora1_peft", 0.7}, {"lora2_peft", -0.3}});
  const MemoryPlan a = engine().memory_plan(plain), b = engine().memory_plan(with);
  EXPECT(a.dit_lora == 0 && b.dit_lora > 0 && b.resident() == a.resident() + b.dit_lora);
  latents(engine(), with);
  EXPECT(engine().loras()["working_bytes"].get<int64_t>() == b.dit_lora);
}

TEST(lora_on_float8_block_linears_merges_into_a_compute_dtype_copy_and_restores_the_float8_bytes) {
  const T2VEngine f8(wantest::tiny_model("comfyui-fp8"));
  EXPECT(f8.placement()["dit_f8_params"].get<int64_t>() > 0);
  const at::Tensor base = latents(f8, lora_request({}));
  const at::Tensor with = latents(f8, lora_request({{"lora1_peft", 0.7}}));
  EXPECT(wantest::rel_l2(with, base) > 1e-3);
  EXPECT(at::equal(latents(f8, lora_request({})), base));
}

TEST(lora_reaches_the_other_node_of_a_two_node_group_through_the_request_stream) {
  const uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  const std::string model = wantest::tiny_model();  // made once, before the two nodes read it
  std::unique_ptr<T2VEngine> nodes[2];
  std::array<std::string, 2> err = wantest::on_two_nodes([&](int k) {
    ParallelOptions p;
    p.devices = "cpu:0", p.ulysses = 2, p.timeout_s = 30;
    p.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), p.nnodes = 2, p.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, p);
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  at::Tensor lat;
  std::string followed = "none";
  std::atomic<bool> stop{false};
  err = wantest::on_two_nodes([&](int k) {
    if (k == 0) {
      lat = nodes[0]->generate(lora_request({{"lora1_peft", 0.7}, {"lora2_peft", -0.3}})).latents;
      nodes[0]->end_requests();
    } else {
      nodes[1]->follow(stop, [&](int64_t, const std::string& e) { followed = e; });
    }
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  EXPECT(followed.empty());  // node 1 ran the request without an error
  EXPECT(nodes[1]->loras()["loras"].size() == 2 && nodes[1]->loras()["loras"][1]["scale"] == -0.3);
  EXPECT(wantest::rel_l2(lat, G("fused.latents")) < 1e-5);
}

TEST(lora_inspect_counts_the_working_copies_in_every_peak_and_holds_them_to_the_budget) {
  InspectOptions o;
  o.engine.parallel.devices = "cpu";
  o.height = 48, o.width = 64, o.num_frames = 5;
  const nlohmann::json base = inspect_model(wantest::tiny_model(), o)["memory"];
  o.loras = {{lora_file("lora1_kohya_comfy"), 0.7, true}, {lora_file("lora2_peft"), -0.3, true}};
  const nlohmann::json with = inspect_model(wantest::tiny_model(), o)["memory"];
  const int64_t copies = with["dit_lora_bytes"].get<int64_t>();
  // Every weight the two LoRAs touch, once, in float32 on the CPU.
  const DitArch& arch = engine().model().arch.dit;
  EXPECT(copies > 0 && base["dit_lora_bytes"] == 0);
  EXPECT(copies == lora_working_bytes({{load_lora(o.loras[0].path, arch), 0.7}, {load_lora(o.loras[1].path, arch), -0.3}},
                                      at::kFloat, arch));
  EXPECT(with["rank0_peak_bytes"].get<int64_t>() == base["rank0_peak_bytes"].get<int64_t>() + copies);
  // A budget the base run just fits is too small with the LoRAs.
  o.engine.compute.memory_budget = base["rank0_peak_bytes"].get<int64_t>();
  EXPECT(inspect_model(wantest::tiny_model(), o)["memory"]["budget"]["fits"] == false);
  o.loras.clear();
  EXPECT(inspect_model(wantest::tiny_model(), o)["memory"]["budget"]["fits"] == true);
  // A LoRA that does not fit the model is refused naming it, as generate would.
  o.loras = {{"/no/such/lora.safetensors", 1.0, true}};
  EXPECT_ERROR(inspect_model(wantest::tiny_model(), o), "/no/such/lora.safetensors", "does not exist");
  EXPECT(inspect_options_from_json({{"loras", {{{"path", "a.safetensors"}, {"scale", 0.5}}}}}).loras[0].scale == 0.5);
}

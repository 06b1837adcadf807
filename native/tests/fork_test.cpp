// Forked runs (pipeline/fork.h): stopped after step k and resumed, with unchanged parameters,
// the latents are the uninterrupted run's bit for bit, on one rank and on a Ulysses group of two
// threads and on two nodes (node 0 publishes the resume latents to its follower); a resume that does not fit (shape, model, schedule, step) is refused before compute.
#include <atomic>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "formats/safetensors.h"
#include "parallel/process_group.h"
#include "pipeline/fork.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {
const T2VEngine& one_rank() {
  static const T2VEngine e(wantest::tiny_model());
  return e;
}
const T2VEngine& ulysses2() {
  static const T2VEngine e(wantest::tiny_model(), [] {
    ParallelOptions p;
    p.devices = "cpu:0-1", p.ulysses = 2, p.ring = 1;
    return p;
  }());
  return e;
}
T2VRequest base() { return wantest::tiny_request(32, 48, 5, 5, 4.5, 21); }

// The run stopped after `k` steps, then resumed from its fork state with `change` applied.
T2VResult stop_then_resume(const T2VEngine& e, T2VRequest r, int64_t k, const std::function<void(T2VRequest&)>& change = {}) {
  r.stop_at_step = k;
  const T2VResult stopped = e.generate(r);
  EXPECT(!stopped.video.defined());
  EXPECT(stopped.fork["step"] == k);
  EXPECT(stopped.timings["stopped_at_step"] == k);
  r.stop_at_step = 0;
  r.resume_from_step = stopped.fork["step"].get<int64_t>();
  r.resume_latents = stopped.latents;
  r.resume_model = stopped.fork["model"].get<std::string>();
  r.resume_sigmas = stopped.fork["sigmas"].get<std::vector<double>>();
  if (change) change(r);
  return e.generate(r);
}

std::string refusal(const T2VEngine& e, const T2VRequest& r) {
  try {
    e.validate(r);
  } catch (const ParamError& err) {
    return err.field + ": " + err.what();
  }
  return "accepted";
}
}  // namespace

TEST(fork_stopped_then_resumed_equals_the_uninterrupted_run_on_one_rank) {
  const T2VResult whole = one_rank().generate(base());
  for (int64_t k : {1, 3, 4}) {
    const T2VResult resumed = stop_then_resume(one_rank(), base(), k);
    EXPECT(at::equal(resumed.latents, whole.latents));
    EXPECT(at::equal(resumed.video, whole.video));
    EXPECT(resumed.timings["resumed_from_step"] == k);
  }
  // A custom schedule forks the same way.
  T2VRequest listed = base();
  listed.timesteps = {1000, 900, 600, 300, 50}, listed.num_inference_steps = 5;
  EXPECT(at::equal(stop_then_resume(one_rank(), listed, 2).latents, one_rank().generate(listed).latents));
}

TEST(fork_stopped_then_resumed_equals_the_uninterrupted_run_on_a_ulysses_group) {
  const T2VResult whole = ulysses2().generate(base());
  const T2VResult resumed = stop_then_resume(ulysses2(), base(), 2);
  EXPECT(at::equal(resumed.latents, whole.latents));
  // The state is the same latents whatever ran it: a one-rank fork resumes on the group.
  EXPECT(wantest::rel_l2(whole.latents, one_rank().generate(base()).latents) < 1e-5);
}

TEST(fork_a_resume_may_change_prompt_cfg_and_tea_cache) {
  const T2VResult other_cfg = stop_then_resume(one_rank(), base(), 2, [](T2VRequest& r) { r.cfg_scale = 1.0; });
  // Steps 3.. without the negative pass: neither the cfg-4.5 run nor a cfg-1 run from the start.
  T2VRequest cfg1 = base();
  cfg1.cfg_scale = 1.0;
  EXPECT(!at::equal(other_cfg.latents, one_rank().generate(base()).latents));
  EXPECT(!at::equal(other_cfg.latents, one_rank().generate(cfg1).latents));
  // TeaCache on the continuation: the first resumed step runs the blocks (no residual to reuse).
  const T2VResult tea = stop_then_resume(one_rank(), base(), 2, [](T2VRequest& r) {
    r.tea_cache_l1_thresh = 10, r.tea_cache_model_id = "Wan2.1-T2V-1.3B";
  });
  EXPECT(at::isfinite(tea.latents).all().item<bool>());
  EXPECT(tea.video.defined());
}

TEST(fork_a_resume_that_does_not_fit_is_refused_before_compute) {
  T2VRequest r = base();
  r.stop_at_step = 2;
  const T2VResult stopped = one_rank().generate(r);
  T2VRequest ok = base();
  ok.resume_from_step = 2, ok.resume_latents = stopped.latents, ok.resume_model = stopped.fork["model"].get<std::string>();
  ok.resume_sigmas = stopped.fork["sigmas"].get<std::vector<double>>();
  EXPECT(refusal(one_rank(), ok) == "accepted");
  T2VRequest x = ok;
  x.height = 48;
  EXPECT(refusal(one_rank(), x).find("resume: resume latents have shape [16, 2, 4, 6], this request's video needs [16, 2, 6, 6]") == 0);
  x = ok, x.resume_model = "fnv1a64:0123456789abcdef";
  EXPECT(refusal(one_rank(), x).find("resume latents come from another model (fnv1a64:0123456789abcdef)") != std::string::npos);
  x = ok, x.sigma_shift = 3.0;
  EXPECT(refusal(one_rank(), x).find("resume latents come from another schedule: sigma 1 was") != std::string::npos);
  x = ok, x.num_inference_steps = 8;
  EXPECT(refusal(one_rank(), x).find("a schedule of 5 steps, this request's has 8") != std::string::npos);
  x = ok, x.resume_from_step = 5, x.resume_sigmas.clear();
  EXPECT(refusal(one_rank(), x).find("resume: resume from step 5 is beyond the schedule's 5 steps") == 0);
  x = ok, x.stop_at_step = 2;
  EXPECT(refusal(one_rank(), x).find("stop_at_step: stop_at_step must be between 3 and 4") == 0);
  x = base(), x.stop_at_step = 5;
  EXPECT(refusal(one_rank(), x).find("stop_at_step must be between 1 and 4") != std::string::npos);
  x = ok, x.resume_latents = at::full_like(stopped.latents, NAN);
  EXPECT(refusal(one_rank(), x).find("not finite") != std::string::npos);
  // The engine stays usable.
  EXPECT(one_rank().generate(ok).video.defined());
}

TEST(fork_saved_tensors_carry_the_fork_state) {
  T2VRequest r = base();
  r.stop_at_step = 3;
  const T2VResult stopped = one_rank().generate(r);
  const std::string path = wantest::scratch("fork.safetensors");
  save_result_tensors(path, stopped, r);
  const SafetensorsHeader h = read_safetensors_header(path);
  const nlohmann::json state = nlohmann::json::parse(h.metadata.at("wanlab.fork"));
  EXPECT(state["step"] == 3 && state["steps"] == 5);
  EXPECT(state["model"] == one_rank().dit_identity());
  EXPECT(state["seed"] == "21");
  EXPECT(state["shape"] == nlohmann::json({16, 2, 4, 6}));
  EXPECT(state["sigmas"].size() == 5);
  EXPECT(!state["request"].contains("promptIds"));
  const TensorMap t = load_safetensors(path, false);
  EXPECT(at::equal(t.at("latents").data, stopped.latents));
  EXPECT(!t.count("video"));
}

TEST(fork_dit_identity_is_the_same_in_every_layout_of_one_checkpoint) {
  EXPECT(T2VEngine(wantest::tiny_model("diffusers")).dit_identity() == one_rank().dit_identity());
  EXPECT(T2VEngine(wantest::tiny_model("official", 1)).dit_identity() != one_rank().dit_identity());
}

TEST(fork_stopped_then_resumed_equals_the_uninterrupted_run_on_two_nodes) {
  // Node 0 runs the whole run, the fork and its resume; node 1 follows with no latents of its own:
  // the resume's latents reach it through the request stream, or its collectives would not meet.
  const std::string model = wantest::tiny_model();  // written once, before the two nodes read it
  const uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  std::unique_ptr<T2VEngine> nodes[2];
  std::array<std::string, 2> err = wantest::on_two_nodes([&](int k) {
    ParallelOptions o;
    o.devices = "cpu:0", o.ulysses = 2, o.ring = 1, o.timeout_s = 30;
    o.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), o.nnodes = 2, o.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, o);
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  T2VResult whole, resumed;
  std::vector<std::string> followed;
  std::atomic<bool> stop{false};
  err = wantest::on_two_nodes([&](int k) {
    if (k == 0) {
      whole = nodes[0]->generate(base());
      resumed = stop_then_resume(*nodes[0], base(), 2);
      nodes[0]->end_requests();
    } else {
      nodes[1]->follow(stop, [&](int64_t, const std::string& e) { followed.push_back(e); });
    }
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{err[0] + " | " + err[1]};
  EXPECT(followed.size() == 3);
  for (const std::string& e : followed) EXPECT(e.empty());
  EXPECT(at::equal(resumed.latents, whole.latents));
  EXPECT(wantest::rel_l2(whole.latents, one_rank().generate(base()).latents) < 1e-5);
}

// The device group and sequence parallelism on CPU ranks (threads of this process, Gloo over
// loopback): every layout of 1, 2 and 4 ranks gives the single-rank latents within 1e-5 rel L2,
// on token counts divisible and not divisible by the ranks and on a single frame; faults (a
// throwing rank, a stalled rank, a tensor on the wrong device) fail with named errors and the
// group serves the next request.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include <thread>
#include "common/cuda.h"
#include "parallel/devices.h"
#include "parallel/process_group.h"
#include "pipeline/t2v.h"
#include "faults.h"
#include "test.h"

using namespace wan;
using wantest::FaultInjection;

namespace {

const T2VEngine& engine_for(const std::string& devices, int ulysses, int ring, bool cfg) {
  static std::map<std::string, std::unique_ptr<T2VEngine>> engines;
  const std::string key = devices + "/" + std::to_string(ulysses) + "/" + std::to_string(ring) + "/" + (cfg ? "c" : "");
  auto& e = engines[key];
  if (!e) {
    ParallelOptions p;
    p.devices = devices, p.ulysses = ulysses, p.ring = ring, p.cfg_parallel = cfg;
    p.timeout_s = 60;
    e = std::make_unique<T2VEngine>(wantest::tiny_model(), p);
  }
  return *e;
}

T2VRequest request(int64_t height, int64_t width, int64_t frames, double cfg_scale = 5.0) {
  return wantest::tiny_request(height, width, frames, 2, cfg_scale);
}

struct TestLayout {
  const char* devices;
  int ulysses, ring;
  bool cfg;
};

}  // namespace

TEST(parallel_c10d_gloo_all_to_all_and_all_gather_between_thread_ranks) {
  auto rdv = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(30));
  EXPECT(rdv->port() != 0);
  std::vector<at::Tensor> a2a(2), ag(2);
  std::vector<std::string> err(2);
  std::vector<std::thread> th;
  for (int r = 0; r < 2; ++r)
    th.emplace_back([&, r] {
      try {
        RankContext ctx;
        ctx.rank = r, ctx.world = 2, ctx.device_name = "cpu:" + std::to_string(r);
        ctx.timeout = std::chrono::seconds(30);
        // One TCPStore client per rank: a client is not thread-safe.
        auto store = Rendezvous::join("127.0.0.1", rdv->port(), std::chrono::seconds(30));
        Communicator c(ctx, *store, "world", {0, 1}, "t", "127.0.0.1");
        a2a[r] = c.all_to_all(at::arange(4, at::kFloat) + 10 * r, "test a2a");
        ag[r] = c.all_gather(at::full({3}, float(r)), "test ag");
      } catch (const std::exception& e) {
        err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  for (auto& e : err)
    if (!e.empty()) throw wantest::Failure{e};
  EXPECT(at::equal(a2a[0], at::tensor({0.f, 1.f, 10.f, 11.f})));
  EXPECT(at::equal(a2a[1], at::tensor({2.f, 3.f, 12.f, 13.f})));
  EXPECT(at::equal(ag[1], at::stack({at::zeros({3}), at::ones({3})})));
}

TEST(parallel_layouts_match_the_single_rank_latents) {
  const TestLayout layouts[] = {{"cpu:0-1", 2, 1, false}, {"cpu:0-1", 1, 2, false}, {"cpu:0-1", 1, 1, true},
                            {"cpu:0-3", 2, 2, false}, {"cpu:0-3", 1, 4, false}, {"cpu:0-3", 2, 1, true},
                            {"cpu:0-3", 1, 2, true}};
  // tokens per sample: 48x48x5 -> 2*3*3 = 18 (not divisible by 4), 48x32x1 -> 6 (one frame; with
  // 4 ranks one shard is all padding), 32x32x5 -> 8.
  const int64_t sizes[][3] = {{48, 48, 5}, {48, 32, 1}, {32, 32, 5}};
  const T2VEngine& single = engine_for("cpu", 0, 0, false);
  double worst = 0;
  for (const auto& s : sizes) {
    T2VRequest r = request(s[0], s[1], s[2]);
    const at::Tensor ref = single.generate(r).latents;
    for (const TestLayout& L : layouts) {
      T2VResult out = engine_for(L.devices, L.ulysses, L.ring, L.cfg).generate(r);
      const double e = wantest::rel_l2(out.latents, ref);
      std::printf("     %-7s ulysses %d ring %d%s %2lldx%2lldx%lld: latents rel L2 %.2e\n", L.devices, L.ulysses, L.ring,
                  L.cfg ? " cfg" : "    ", (long long)s[0], (long long)s[1], (long long)s[2], e);
      worst = std::max(worst, e);
      EXPECT(e <= 1e-5);
      EXPECT(out.timings.contains("ranks"));
    }
  }
  std::printf("     worst latents rel L2 %.2e\n", worst);
}

TEST(device_lists_parse_and_auto_says_what_it_chose) {
  auto list = [](const std::string& text) {
    std::string out;
    for (const wan::DeviceSpec& d : wan::parse_devices(text)) out += d.type + ":" + std::to_string(d.index) + " ";
    return out;
  };
  EXPECT(list("cpu") == "cpu:0 ");
  EXPECT(list("cpu:0-3") == "cpu:0 cpu:1 cpu:2 cpu:3 ");
  EXPECT(list("cuda:0,2,5") == "cuda:0 cuda:2 cuda:5 ");
  EXPECT_THROWS(wan::parse_devices("tpu:0"), "the device type must be cpu or cuda (e.g. cpu:0-3, cuda:0-7), or the list 'auto'");
  EXPECT_THROWS(wan::parse_devices("cuda:1,1"), "device cuda:1 is listed twice in 'cuda:1,1'");
  EXPECT_THROWS(wan::parse_devices("cpu:3-1"), "invalid device range '3-1'");
  // auto: the first GPU when one is visible, else the CPU with the reason.
  std::string why;
  EXPECT(wan::resolve_devices("cpu:0-3") == "cpu:0-3");  // a list stands for itself
  const std::string chosen = wan::resolve_devices("auto", &why);
  if (wan::cuda_available()) {
    EXPECT(chosen == "cuda:0" && list("auto") == "cuda:0 " && why.find("is visible") != std::string::npos);
  } else {
    EXPECT(chosen == "cpu" && list("auto") == "cpu:0 ");
    EXPECT(why.find(wan::cuda_built() ? "no CUDA device is visible" : "CPU-only libtorch") != std::string::npos);
  }
}

TEST(parallel_layout_errors_are_named) {
  EXPECT_THROWS(engine_for("cpu:0-3", 4, 1, false), "ulysses degree 4 does not divide the DiT's 2 heads");
  EXPECT_THROWS(engine_for("cpu:0-3", 3, 1, false), "must equal the number of devices (4)");
  EXPECT_THROWS(engine_for("cpu:0-2", 0, 0, true), "cfg parallel degree 2 does not divide the 3 devices");
  // 16x16, one frame: 1 token for 4 ranks.
  EXPECT_THROWS(engine_for("cpu:0-3", 1, 4, false).generate(request(16, 16, 1)),
                "4 sequence-parallel ranks but only 1 tokens");
  // ... and the group still serves.
  EXPECT(engine_for("cpu:0-3", 1, 4, false).generate(request(32, 32, 1)).latents.defined());
}

TEST(parallel_faults_fail_with_named_errors_and_the_group_recovers) {
  const T2VEngine& e = engine_for("cpu:0-3", 2, 2, false);
  const T2VRequest r = request(32, 32, 5);
  const at::Tensor ref = engine_for("cpu", 0, 0, false).generate(r).latents;
  DeviceGroup& g = *e.group();
  g.set_timeout(std::chrono::milliseconds(1500));

  FaultInjection f;
  f.kind = FaultInjection::Throw, f.rank = 2, f.step = 1;
  wantest::inject_fault(g, f);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROWS(e.generate(r), "rank 2 (cpu:2): injected fault at step 2/2");
  const double throw_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  f.kind = FaultInjection::Stall, f.rank = 1, f.step = 0, f.stall = std::chrono::seconds(10);
  wantest::inject_fault(g, f);
  t0 = std::chrono::steady_clock::now();
  EXPECT_THROWS(e.generate(r), "timed out after 1.5 s waiting for rank 1");
  const double stall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  f.kind = FaultInjection::WrongDevice, f.rank = 3, f.step = 1;
  wantest::inject_fault(g, f);
  EXPECT_THROWS(e.generate(r), "rank 3 (cpu:3): tensor self-attention q is on meta but the rank's device is cpu at step 2/2, block 0");
  std::printf("     throw failed in %.2f s, stall in %.2f s (timeout 1.5 s)\n", throw_s, stall_s);
  EXPECT(stall_s < 8);

  wantest::inject_fault(g, {});
  g.set_timeout(std::chrono::seconds(60));
  const double err = wantest::rel_l2(e.generate(r).latents, ref);
  EXPECT(err <= 1e-5);
}

TEST(parallel_cancel_stops_every_rank_at_a_step_boundary) {
  const T2VEngine& e = engine_for("cpu:0-1", 2, 1, false);
  T2VRequest r = request(32, 32, 1, 1.0);
  r.num_inference_steps = 4;
  std::atomic<bool> cancel{false};
  bool thrown = false;
  try {
    e.generate(r, [&](const T2VEvent& ev) { if (ev.stage == "denoise" && ev.step == 2) cancel = true; }, &cancel);
  } catch (const Cancelled& c) {
    thrown = true;
    EXPECT(std::string(c.what()) == "cancelled at step 3/4");  // steps 1, 2 ran
  }
  EXPECT(thrown);
  cancel = false;
  EXPECT(e.generate(r, {}, &cancel).latents.defined());
}

// Inside a step: every rank reads the flag between blocks and attention chunks; the first to
// see it throws and the group's abort stops the others (pipeline/denoise.cpp denoise_parallel), so a
// 480x832x81 job on two ranks stops within seconds and the rebuilt group computes as before.
TEST(parallel_cancel_inside_a_step_stops_every_rank_within_seconds_and_the_group_serves_again) {
  const T2VEngine& e = engine_for("cpu:0-1", 2, 1, false);
  const T2VRequest small = request(32, 32, 1, 1.0);
  const at::Tensor ref = e.generate(small).latents;
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point set_at;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    set_at = std::chrono::steady_clock::now();
    cancel = true;
  });
  std::string what;
  try {
    e.generate(wantest::tiny_request(480, 832, 81, 50, 1.0), {}, &cancel);
  } catch (const Cancelled& c) {
    what = c.what();
  }
  const auto t_end = std::chrono::steady_clock::now();
  canceller.join();
  const double latency = std::chrono::duration<double>(t_end - set_at).count();
  std::printf("     2 ranks: cancel latency %.2f s (group rebuilt included): \"%s\"\n", latency, what.c_str());
  EXPECT(what.rfind("cancelled at step 1/50, block ", 0) == 0);
  EXPECT(latency < 3.0);
  cancel = false;
  EXPECT(at::equal(e.generate(small, {}, &cancel).latents, ref));
}

// Two nodes (two engines in this process, as above), one CFG branch each: node 1's forward
// meets node 0 only at the step's end, so it learns of node 0's cancel from the store key that
// the stopping rank sets (polled between blocks), not from a collective. Both stop within seconds
// and both serve the next request.
TEST(parallel_cancel_on_node_0_stops_a_follower_node_inside_its_step) {
  uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();
  std::unique_ptr<T2VEngine> nodes[2];
  std::string err[2], what[2];
  double latency[2] = {0, 0};
  at::Tensor again[2];
  const T2VRequest big = wantest::tiny_request(480, 832, 81, 50, 5.0), small = request(32, 32, 1);
  const std::string model = wantest::tiny_model();
  std::atomic<bool> cancel{false};
  std::atomic<int> ready{0};
  std::atomic<std::chrono::steady_clock::rep> set_at{0};  // when the flag was set (steady clock ticks)
  auto node = [&](int k) {
    try {
      ParallelOptions p;
      p.devices = "cpu:0", p.cfg_parallel = true, p.timeout_s = 60;
      p.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), p.nnodes = 2, p.node_rank = k;
      nodes[k] = std::make_unique<T2VEngine>(model, p);
      ++ready;
      try {
        nodes[k]->generate(big, {}, k == 0 ? &cancel : nullptr);
      } catch (const Cancelled& c) {
        what[k] = c.what();
      }
      const std::chrono::steady_clock::duration since(std::chrono::steady_clock::now().time_since_epoch().count() - set_at);
      latency[k] = std::chrono::duration<double>(since).count();
      again[k] = nodes[k]->generate(small).latents;
    } catch (const std::exception& e) {
      err[k] = e.what();
    }
  };
  std::thread t0(node, 0), t1(node, 1);
  while (ready < 2 && err[0].empty() && err[1].empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  set_at = std::chrono::steady_clock::now().time_since_epoch().count();
  cancel = true;
  t0.join(), t1.join();
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{"node 0: " + err[0] + "\nnode 1: " + err[1]};
  std::printf("     2 nodes, cfg across them: cancel latency %.2f s (node 0: \"%s\"), %.2f s (node 1: \"%s\")\n",
              latency[0], what[0].c_str(), latency[1], what[1].c_str());
  EXPECT(what[0].rfind("cancelled at step 1/50, block ", 0) == 0);
  EXPECT(what[1].rfind("cancelled at step 1/50, block ", 0) == 0);
  EXPECT(latency[0] < 5.0 && latency[1] < 5.0);
  EXPECT(at::equal(again[0], again[1]));
}

TEST(parallel_two_nodes_form_one_group_through_the_tcp_store) {
  // Two "nodes" of 2 ranks each (here two engines in this process; bin/wanlab runs them as two
  // processes): one group of 4, the same latents as the one-process 4-rank run.
  uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  std::unique_ptr<T2VEngine> nodes[2];
  std::array<std::string, 2> err;
  at::Tensor lat[2];
  const T2VRequest r = request(48, 48, 5);
  const std::string model = wantest::tiny_model();  // written once, before the threads
  err = wantest::on_two_nodes([&](int k) {
    ParallelOptions p;
    p.devices = "cpu:0-1", p.ulysses = 2, p.ring = 2, p.timeout_s = 60;
    p.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), p.nnodes = 2, p.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, p);
    lat[k] = nodes[k]->generate(r).latents;
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{"node 0: " + err[0] + "\nnode 1: " + err[1]};
  const at::Tensor ref = engine_for("cpu:0-3", 2, 2, false).generate(r).latents;
  const double e0 = wantest::rel_l2(lat[0], ref), e1 = wantest::rel_l2(lat[1], ref);
  std::printf("     2 nodes x 2 ranks vs one process of 4: rel L2 %.2e (node 0), %.2e (node 1)\n", e0, e1);
  EXPECT(e0 <= 1e-5 && e1 <= 1e-5);
  EXPECT_THROWS(T2VEngine(wantest::tiny_model(), [] { ParallelOptions p; p.devices = "cpu:0-1"; p.nnodes = 2;
                                                      p.rendezvous = "http://x:1"; return p; }()),
                "rendezvous must be tcp://HOST:PORT");
}

TEST(a_follower_node_runs_node_0s_request_as_published_with_its_uint64_seed) {
  // CFG across two nodes of one rank: node 1 computes the unconditional pass of the request it
  // follows from the store, on its own copy of the noise, so node 0's latents equal one process's
  // only when every field (the seed 2^53 + 1 included, which a double would round) arrived intact.
  uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  std::unique_ptr<T2VEngine> nodes[2];
  std::array<std::string, 2> err;
  T2VRequest r = request(32, 48, 5, 3.5);
  r.seed = 9007199254740993ULL, r.sigma_shift = 3.0, r.num_inference_steps = 3;
  const std::string model = wantest::tiny_model();
  at::Tensor latents;
  std::vector<std::string> followed;
  std::atomic<bool> stop{false};
  err = wantest::on_two_nodes([&](int k) {
    ParallelOptions p;
    p.devices = "cpu:0", p.cfg_parallel = true, p.timeout_s = 60;
    p.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), p.nnodes = 2, p.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, p);
    if (k == 0) {
      latents = nodes[0]->generate(r).latents;
      nodes[0]->end_requests();
    } else {
      nodes[1]->follow(stop, [&](int64_t, const std::string& e) { followed.push_back(e); });
    }
  });
  if (!err[0].empty() || !err[1].empty()) throw wantest::Failure{"node 0: " + err[0] + "\nnode 1: " + err[1]};
  const at::Tensor one = engine_for("cpu", 0, 0, false).generate(r).latents;
  T2VRequest rounded = r;
  rounded.seed = uint64_t(double(r.seed));  // 2^53: what a double would have carried
  const at::Tensor other = engine_for("cpu", 0, 0, false).generate(rounded).latents;
  const double e = wantest::rel_l2(latents, one);
  std::printf("     2 nodes, cfg across them: rel L2 %.2e vs one process (seed 2^53: %.2e)\n", e,
              wantest::rel_l2(other, one));
  EXPECT(followed.size() == 1 && followed[0].empty());
  EXPECT(e <= 1e-5);
  EXPECT(wantest::rel_l2(other, one) > 1e-3);  // the seed's last bit matters
}

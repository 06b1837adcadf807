// Transports: device lists that share a GPU (cuda:KxN) and the refusals around them, the choice
// between Gloo and NCCL, and Gloo staged through host buffers. On CPU ranks staging is forced
// (RankContext::stage_host, WANLAB_STAGE_HOST=1): the same copies, buffers and copy back a GPU
// rank makes, which must give bit-identical results to the unstaged path. The CUDA cases (per-rank
// streams, ranks sharing GPU 0) run where a GPU is visible and say so where none is.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/cuda.h"
#include "parallel/devices.h"
#include "parallel/process_group.h"
#include "pipeline/engine_options.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {

// What one rank got back from each collective.
struct RankResults {
  at::Tensor a2a, a2a_bf16, gather, exchange, broadcast;
  CommStats stats;
  bool staged = false;
};

// n thread ranks in one Gloo group, staged or not; each runs every collective on its own inputs
// (seeded by its rank), two of them in flight at once and waited in reverse order.
std::vector<RankResults> run_collectives(int n, bool stage) {
  auto rdv = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(30));
  std::vector<int> members;
  for (int r = 0; r < n; ++r) members.push_back(r);
  std::vector<RankResults> out(n);
  std::vector<std::string> err(n);
  std::vector<std::thread> th;
  for (int r = 0; r < n; ++r)
    th.emplace_back([&, r] {
      try {
        RankContext ctx;
        ctx.rank = r, ctx.world = n, ctx.device_name = "cpu:" + std::to_string(r);
        ctx.timeout = std::chrono::seconds(30);
        ctx.transport = Transport::Gloo;
        ctx.stage_host = stage;
        auto store = Rendezvous::join("127.0.0.1", rdv->port(), std::chrono::seconds(30));
        Communicator c(ctx, *store, "world", members, stage ? "staged" : "plain", "127.0.0.1");
        at::Generator g = seeded_generator(at::kCPU, 100 + uint64_t(r));
        const at::Tensor x = at::randn({n * 3, 5}, g), y = at::randn({4, 7}, g), z = at::randn({2, 3, 4}, g);
        const at::Tensor w = at::randn({6}, g);
        RankResults& o = out[r];
        o.staged = c.staged();
        o.a2a = c.all_to_all(x, "a2a");
        o.a2a_bf16 = c.all_to_all(x.to(at::kBFloat16), "a2a bf16");
        Pending ex = c.start_exchange(z, (r + 1) % n, (r + n - 1) % n, "ring");
        Pending ag = c.start_all_gather(y, "gather");
        o.gather = ag.wait();
        o.exchange = ex.wait();
        o.broadcast = c.broadcast(w, 1, "broadcast");
        c.barrier("end");
        o.stats = ctx.stats;
      } catch (const std::exception& e) {
        err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  for (int r = 0; r < n; ++r)
    if (!err[r].empty()) throw wantest::Failure{"rank " + std::to_string(r) + ": " + err[r]};
  return out;
}

// A rank's input as run_collectives draws it (to check the results against what was sent).
std::vector<at::Tensor> inputs(int n, int r) {
  at::Generator g = seeded_generator(at::kCPU, 100 + uint64_t(r));
  const at::Tensor x = at::randn({n * 3, 5}, g), y = at::randn({4, 7}, g), z = at::randn({2, 3, 4}, g);
  return {x, y, z, at::randn({6}, g)};
}

// Sets an environment variable for a scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

std::string field_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ParamError& e) {
    return e.field;
  } catch (const std::exception& e) {
    return std::string("not a ParamError: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST(transport_cuda_KxN_lists_one_gpu_several_times_and_only_so) {
  const std::vector<DeviceSpec> four = parse_devices("cuda:0x4");
  EXPECT(four.size() == 4);
  for (const DeviceSpec& d : four) EXPECT(d.type == "cuda" && d.index == 0);
  EXPECT(shares_device(four) && format_devices(four) == "cuda:0x4");
  EXPECT(parse_devices("cuda:3x2").size() == 2 && parse_devices("cuda:3x2")[1].index == 3);
  EXPECT(!shares_device(parse_devices("cuda:0-3")) && format_devices(parse_devices("cuda:0,2,5")) == "cuda:0,2,5");
  EXPECT(!shares_device(parse_devices("cpu:0-3")) && format_devices(parse_devices("cpu:0-1")) == "cpu:0,1");
  // A GPU twice without the syntax: named, with why NCCL refuses it and the test syntax.
  EXPECT_ERROR(parse_devices("cuda:0,0"), "device cuda:0 is listed twice in 'cuda:0,0'", "NCCL refuses two ranks on one GPU",
               "cuda:0xN (e.g. cuda:0x4)");
  EXPECT_ERROR(parse_devices("cuda:0-1,1"), "device cuda:1 is listed twice in 'cuda:0-1,1'", "cuda:1x4");
  EXPECT_ERROR(parse_devices("cpu:0,0"), "device cpu:0 is listed twice in 'cpu:0,0'");
  // CPU ranks are numbered; the rank count is 2..16; KxN is the whole list.
  EXPECT_ERROR(parse_devices("cpu:0x2"), "invalid devices 'cpu:0x2'", "CPU ranks are numbered", "cpu:0-3");
  EXPECT_ERROR(parse_devices("cuda:0x1"), "2 to 16 ranks, got 1");
  EXPECT_ERROR(parse_devices("cuda:0x17"), "2 to 16 ranks, got 17");
  EXPECT_ERROR(parse_devices("cuda:0x4,1"), "invalid device index '4,1'");
  EXPECT_ERROR(parse_devices("cuda:0x"), "invalid device index ''");
}

TEST(transport_choice_defaults_and_refusals_name_the_reason) {
  const auto cpu2 = parse_devices("cpu:0-1"), gpus = parse_devices("cuda:0,1"), shared = parse_devices("cuda:0x4");
  EXPECT(choose_transport("", cpu2, "cpu:0-1") == Transport::Gloo);
  EXPECT(choose_transport("gloo", cpu2, "cpu:0-1") == Transport::Gloo);
  EXPECT(choose_transport("", shared, "cuda:0x4") == Transport::Gloo);  // NCCL refuses a shared GPU
  EXPECT(choose_transport("gloo", gpus, "cuda:0,1") == Transport::Gloo);
  EXPECT(choose_transport("", gpus, "cuda:0,1") == (nccl_built() ? Transport::Nccl : Transport::Gloo));
  EXPECT_ERROR(choose_transport("mpi", cpu2, "cpu:0-1"), "transport must be gloo or nccl, got 'mpi'");
  EXPECT(field_of([&] { choose_transport("mpi", cpu2, "cpu:0-1"); }) == "transport");
  if (nccl_built()) {
    EXPECT(choose_transport("nccl", gpus, "cuda:0,1") == Transport::Nccl);
    EXPECT_ERROR(choose_transport("nccl", cpu2, "cpu:0-1"), "devices 'cpu:0-1' are CPU ranks", "Gloo");
    EXPECT_ERROR(choose_transport("nccl", shared, "cuda:0x4"), "NCCL refuses two ranks on one GPU", "use gloo");
  } else {
    for (const auto* d : {&cpu2, &gpus, &shared})
      EXPECT_ERROR(choose_transport("nccl", *d, "x"), "transport nccl: this wanlab build has no NCCL",
                   cuda_built() ? "without c10d's NCCL" : "CPU-only libtorch");
  }
  EXPECT(field_of([&] { choose_transport("nccl", cpu2, "cpu:0-1"); }) == "transport");
}

TEST(transport_is_an_engine_option_in_the_json_codec) {
  EXPECT(engine_options_from_json(nlohmann::json::parse(R"({"transport": "gloo"})")).parallel.transport == "gloo");
  EXPECT(engine_options_from_json(nlohmann::json::parse("{}")).parallel.transport.empty());  // the default
  EXPECT(field_of([] { engine_options_from_json(nlohmann::json::parse(R"({"transport": 1})")); }) == "transport");
}

TEST(transport_group_devices_are_checked_before_any_load) {
  const GroupDevices g = check_group_devices("cpu:0-3", "gloo");
  EXPECT(g.list == "cpu:0-3" && g.devices.size() == 4 && g.transport == Transport::Gloo && !g.shared);
  EXPECT(field_of([] { check_group_devices("cuda:0,0", ""); }) == "devices");
  EXPECT(field_of([] { check_group_devices("cpu:0-1", "nccl"); }) == "transport");
  EXPECT(field_of([] { check_group_devices("cpu:0,cuda:0", ""); }) == "devices");
  if (cuda_available()) {
    const GroupDevices s = check_group_devices("cuda:0x4", "");
    EXPECT(s.shared && s.transport == Transport::Gloo && s.devices.size() == 4);
  } else {
    // A shared GPU on a machine or build without CUDA: refused for that, not run on the CPU.
    EXPECT_ERROR(check_group_devices("cuda:0x4", ""), "devices 'cuda:0x4': no CUDA device is visible",
                 cuda_built() ? "" : "this wanlab build has no CUDA");
    EXPECT(field_of([] { check_group_devices("cuda:0x4", ""); }) == "devices");
    // The engine refuses it the same way before it loads the model (a missing directory would say so).
    ParallelOptions p;
    p.devices = "cuda:0x2";
    EXPECT_ERROR(T2VEngine(wantest::scratch("no-such-model"), p), "devices 'cuda:0x2'", "no CUDA device is visible");
  }
}

TEST(transport_staged_gloo_collectives_equal_unstaged_bitwise_on_2_and_4_thread_ranks) {
  for (int n : {2, 4}) {
    const std::vector<RankResults> plain = run_collectives(n, false), staged = run_collectives(n, true);
    for (int r = 0; r < n; ++r) {
      const RankResults &a = plain[r], &b = staged[r];
      EXPECT(!a.staged && b.staged);
      for (const auto& [p, s] : {std::pair{a.a2a, b.a2a}, {a.a2a_bf16, b.a2a_bf16}, {a.gather, b.gather},
                                 {a.exchange, b.exchange}, {a.broadcast, b.broadcast}}) {
        EXPECT(s.device().is_cpu() && s.scalar_type() == p.scalar_type() && s.sizes().equals(p.sizes()));
        EXPECT(at::equal(p, s));
      }
      // Staging counts what the rank handed over, as the unstaged path does.
      EXPECT(a.stats.bytes_sent == b.stats.bytes_sent && a.stats.collectives == b.stats.collectives);
      // ... and the results are what was sent: block r of every rank's x, every rank's y, the
      // previous rank's z, rank 1's w.
      const std::vector<at::Tensor> mine = inputs(n, r), prev = inputs(n, (r + n - 1) % n), root = inputs(n, 1);
      for (int j = 0; j < n; ++j) {
        const std::vector<at::Tensor> theirs = inputs(n, j);
        EXPECT(at::equal(b.a2a.narrow(0, j * 3, 3), theirs[0].narrow(0, r * 3, 3)));
        EXPECT(at::equal(b.gather[j], theirs[1]));
      }
      EXPECT(at::equal(b.exchange, prev[2]) && at::equal(b.broadcast, root[3]));
      EXPECT(at::equal(b.a2a_bf16, b.a2a.to(at::kBFloat16)));  // a permutation: bf16 moved as it is
    }
    std::printf("     %d ranks: staged all-to-all, all-gather, send/recv and broadcast equal the unstaged ones bitwise\n", n);
  }
}

TEST(transport_forced_host_staging_gives_the_unstaged_latents_bit_for_bit) {
  // Ulysses 2 x ring 2 with CFG 5: all-to-all, ring send/recv, the head gather, the cancel flag's
  // broadcast; CFG-parallel x ring 2: the velocity's all-gather; Ulysses 2 in bf16 (a GPU rank's
  // dtype) with sharded weights: bf16 through Gloo and the blocks' all-gathers.
  struct L {
    const char* devices;
    int ulysses, ring;
    bool cfg, bf16_sharded;
  };
  const T2VRequest r = wantest::tiny_request(32, 32, 5, 2, 5.0);
  for (const L& l : {L{"cpu:0-3", 2, 2, false, false}, L{"cpu:0-3", 1, 2, true, false}, L{"cpu:0-1", 2, 1, false, true}}) {
    ParallelOptions p;
    p.devices = l.devices, p.ulysses = l.ulysses, p.ring = l.ring, p.cfg_parallel = l.cfg, p.timeout_s = 60;
    ComputeOptions c;
    if (l.bf16_sharded) c.dtype = "bf16", c.shard_weights = true;
    T2VEngine plain(wantest::tiny_model(), p, c);
    std::unique_ptr<T2VEngine> staged;
    {
      ScopedEnv env("WANLAB_STAGE_HOST", "1");
      staged = std::make_unique<T2VEngine>(wantest::tiny_model(), p, c);
    }
    std::set<int> staged_ranks, plain_ranks;
    std::mutex mu;
    auto hook = [&](std::set<int>& seen) {
      return [&](RankState& s, int64_t) {
        std::lock_guard<std::mutex> lock(mu);
        if (s.world->staged() && (!s.ring || s.ring->staged())) seen.insert(s.ctx.rank);
      };
    };
    plain.group()->set_step_hook(hook(plain_ranks));
    staged->group()->set_step_hook(hook(staged_ranks));
    const at::Tensor a = plain.generate(r).latents, b = staged->generate(r).latents;
    EXPECT(plain_ranks.empty() && int(staged_ranks.size()) == staged->group()->size());  // on in one engine only
    EXPECT(at::equal(a, b));
    std::printf("     %s ulysses %d ring %d%s%s: staged latents equal the unstaged ones bit for bit\n", l.devices,
                l.ulysses, l.ring, l.cfg ? " cfg-parallel" : "", l.bf16_sharded ? " bf16 sharded" : "");
  }
}

TEST(transport_rank_threads_get_their_own_stream_on_a_gpu) {
  if (!cuda_available()) {
    std::printf("     no CUDA device here: the per-rank streams run on the GPU check\n");
    RankStreamScope cpu(at::kCPU);  // a no-op on the CPU
    return;
  }
  const at::Device gpu(at::kCUDA, 0);
  void* main_stream = cuda_current_stream(gpu);
  std::vector<void*> streams(3);
  std::vector<std::thread> th;
  for (int i = 0; i < 3; ++i)
    th.emplace_back([&, i] {
      RankStreamScope scope(gpu);
      streams[i] = cuda_current_stream(gpu);
    });
  for (auto& t : th) t.join();
  EXPECT(std::set<void*>(streams.begin(), streams.end()).size() == 3);
  for (void* s : streams) EXPECT(s != main_stream);
  EXPECT(cuda_current_stream(gpu) == main_stream);  // the calling thread's stream is left alone
}

TEST(transport_cuda_ranks_sharing_gpu_0_match_one_rank) {
  if (!cuda_available()) {
    std::printf("     no CUDA device here: cuda:0x2 and cuda:0x4 run on the GPU check\n");
    return;
  }
  struct L {
    const char* devices;
    int ulysses, ring;
    bool cfg, shard;
  };
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0);
  ParallelOptions one;
  one.devices = "cuda:0";
  const at::Tensor ref = T2VEngine(wantest::tiny_model(), one).generate(r).latents;
  for (const L& l : {L{"cuda:0x2", 2, 1, false, false}, L{"cuda:0x2", 1, 2, false, false}, L{"cuda:0x4", 2, 2, false, false},
                     L{"cuda:0x4", 2, 1, true, false}, L{"cuda:0x2", 2, 1, false, true}}) {
    ParallelOptions p;
    p.devices = l.devices, p.ulysses = l.ulysses, p.ring = l.ring, p.cfg_parallel = l.cfg, p.timeout_s = 120;
    ComputeOptions c;
    c.shard_weights = l.shard;
    T2VEngine e(wantest::tiny_model(), p, c);
    EXPECT(e.group()->shared_device() && e.group()->transport() == Transport::Gloo);
    const double err = wantest::rel_l2(e.generate(r).latents, ref);
    std::printf("     %s ulysses %d ring %d%s%s (bf16, gloo staged): latents rel L2 %.2e vs one rank\n", l.devices,
                l.ulysses, l.ring, l.cfg ? " cfg-parallel" : "", l.shard ? " sharded" : "", err);
    EXPECT(err <= 2e-2);
  }
}

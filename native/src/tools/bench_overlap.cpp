#include "tools/bench_overlap.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

#include "tools/median.h"
#include "common/error.h"
#include "kernels/attention.h"
#include "parallel/ring.h"
#include "parallel/thread_ranks.h"
#include "parallel/ulysses.h"

namespace wan {

namespace {

using Clock = std::chrono::steady_clock;

struct Schedule {
  std::vector<double> wall_s, comm_s;  // per call, the slowest rank's wall and that rank's exposed comm
  std::vector<at::Tensor> out;         // per rank, the last call's output
};

}  // namespace

nlohmann::json bench_overlap(const std::string& layout, int ranks, int64_t tokens, int64_t heads, int64_t head_dim,
                             int iters) {
  if (layout != "ulysses" && layout != "ring") fail("bench overlap: layout '", layout, "' is not ulysses or ring");
  if (ranks < 2) fail("bench overlap: --ranks must be at least 2, got ", ranks);
  if (tokens % ranks != 0) fail("bench overlap: --tokens ", tokens, " is not divisible by --ranks ", ranks);
  if (layout == "ulysses" && heads % (ranks * kUlyssesChunks) != 0)
    fail("bench overlap: --heads ", heads, " must be divisible by ranks x ", kUlyssesChunks, " head groups (",
         ranks * kUlyssesChunks, ") to pipeline Ulysses");
  if (iters < 1 || head_dim < 1) fail("bench overlap: need --iters >= 1 and --head-dim >= 1");
  const int64_t Ls = tokens / ranks;
  at::Generator g = at::detail::createCPUGenerator(99);
  const at::Tensor qkv = at::randn({ranks, 3, heads, Ls, head_dim}, g);  // rank r's tokens

  // One group of `ranks` thread ranks; each runs both schedules iters + 1 times (the first is a
  // warm-up), in lock-step: a barrier before every call so the calls start together.
  Schedule sched[2];  // 0: overlapped (the engine), 1: sequential
  for (auto& s : sched) s.wall_s.assign(iters, 0), s.comm_s.assign(iters, 0), s.out.resize(ranks);
  std::mutex mu;
  run_thread_ranks(ranks, "bench overlap " + layout, std::chrono::seconds(120), [&](RankContext& ctx, Communicator& c) {
    c10::InferenceMode guard;
    const int r = ctx.rank;
    const at::Tensor mine = qkv[r];  // [3, H, Ls, d]
    for (int s = 0; s < 2; ++s)
      for (int i = -1; i < iters; ++i) {
        c.barrier("bench start");
        const double comm0 = ctx.stats.comm_s;
        const auto t0 = Clock::now();
        at::Tensor o;
        if (layout == "ring")
          o = ring_attention(&c, mine.narrow(0, 0, 1), mine.narrow(0, 1, 2), tokens, s == 0);
        else
          o = ulysses_attention(c, mine, s == 0 ? kUlyssesChunks : 1, [](const at::Tensor& x) {
            return attention(x.narrow(0, 0, 1), x.narrow(0, 1, 1), x.narrow(0, 2, 1));
          });
        const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        if (i < 0) continue;
        std::lock_guard<std::mutex> lk(mu);
        if (wall > sched[s].wall_s[i]) sched[s].wall_s[i] = wall, sched[s].comm_s[i] = ctx.stats.comm_s - comm0;
        sched[s].out[r] = o;
      }
  });

  auto summary = [&](const Schedule& s, const char* name) {
    const double wall = median_of(s.wall_s), comm = median_of(s.comm_s);
    return nlohmann::json{{"schedule", name}, {"wall_s", s.wall_s}, {"median_s", wall},
                          {"exposed_comm_s", comm}, {"other_s", wall - comm}};
  };
  const at::Tensor a = at::cat(sched[0].out, 2), b = at::cat(sched[1].out, 2);
  const double rel = (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-30);
  const double speedup = median_of(sched[1].wall_s) / std::max(median_of(sched[0].wall_s), 1e-12);
  return {{"bench", "overlap"},
          {"device", "cpu"},
          {"layout", layout},
          {"ranks", ranks},
          {"tokens", tokens},
          {"heads", heads},
          {"head_dim", head_dim},
          {"iters", iters},
          {"ulysses_head_groups", layout == "ulysses" ? kUlyssesChunks : 1},
          {"overlapped", summary(sched[0], "overlapped")},
          {"sequential", summary(sched[1], "sequential")},
          {"sequential_over_overlapped", speedup},
          {"rel_l2_between_schedules", rel},
          {"note", "CPU thread ranks share this machine's cores with Gloo's transfer threads: the ratio "
                   "shows the schedule, not a GPU speed-up"}};
}

}  // namespace wan

#include "pipeline/denoise.h"

#include <mutex>

#include <c10/core/InferenceMode.h>

#include "common/log.h"
#include "parallel/rank_memory.h"
#include "parallel/sequence_parallel.h"
#include "pipeline/stage_checks.h"
#include "pipeline/t2v.h"

namespace wan {

at::Tensor denoise_step(DenoiseStep& s, const at::Tensor& x, int64_t i) {
  const bool cfg = s.cfg_scale != 1.0, tea = !s.skips.empty();
  s.cond_sums.clear(), s.uncond_sums.clear();
  if (tea) s.cond_skip.skip = s.uncond_skip.skip = s.skips[size_t(i)];
  const DitHooks cond_hooks{s.in_block, &s.cond_sums}, uncond_hooks{s.in_block, &s.uncond_sums};
  const double t = s.sched->timesteps[i].item<float>();
  auto pass = [&](const at::Tensor& ctx, BlockSkip& skip, const DitHooks& hooks) {  // -> [16, f, h, w] float32
    BlockSkip* reuse = tea ? &skip : nullptr;
    return s.shard ? s.dit->forward(x, t, ctx, *s.shard, reuse, &hooks) : s.dit->forward(x, t, ctx, reuse, &hooks);
  };
  at::Tensor v;
  if (cfg && s.gather_branches) {  // CFG-parallel: this rank's branch, then both from the group
    v = s.branch == DenoiseStep::Unconditional ? pass(s.negative, s.uncond_skip, uncond_hooks)
                                               : pass(s.context, s.cond_skip, cond_hooks);
    const at::Tensor g = s.gather_branches(v);  // [2, ...]: cond, uncond
    v = g[1] + s.cfg_scale * (g[0] - g[1]);
  } else {
    v = pass(s.context, s.cond_skip, cond_hooks);
    if (cfg) {
      const at::Tensor v_neg = pass(s.negative, s.uncond_skip, uncond_hooks);
      v = v_neg + s.cfg_scale * (v - v_neg);
    }
  }
  at::Tensor next = s.sched->step(x, v, i);
  // On a device group every rank holds the same latents, so every rank fails here together.
  if (!all_finite(next))
    fail_nonfinite_step(i + 1, s.sched->steps(), s.dit->arch().num_layers,
                        {{cfg ? "conditional" : "", &s.cond_sums}, {"unconditional", &s.uncond_sums}});
  return next;
}

int64_t first_nonfinite_block(const std::vector<at::Tensor>& sums) {
  if (sums.empty()) return 0;
  const at::Tensor bad = at::isfinite(at::stack(sums).to(at::kCPU)).logical_not().nonzero();  // [k, 1]
  return bad.size(0) > 0 ? bad[0][0].item<int64_t>() + 1 : 0;
}

void fail_nonfinite_step(int64_t step, int64_t steps, int64_t blocks,
                         const std::vector<std::pair<const char*, const std::vector<at::Tensor>*>>& sums) {
  std::string where;
  for (const auto& [pass, v] : sums)
    if (const int64_t b = first_nonfinite_block(*v); b > 0) {
      where = concat(": the DiT's output first went non-finite in block ", b, "/", blocks, *pass ? " of the " : "", pass,
                     *pass ? " pass" : "");
      break;
    }
  fail("denoising produced non-finite values (NaN or Inf) in the latents at step ", step, "/", steps, where,
       nonfinite_cause("DiT's"));
}

at::Tensor T2VEngine::denoise_parallel(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& negative,
                                       const T2VRequest& r, const FlowMatchSchedule& sched,
                                       const std::vector<bool>& skips, int64_t first, int64_t last,
                                       nlohmann::json& step_s,
                                       const std::function<void(int64_t, const at::Tensor&)>& on_step,
                                       const std::atomic<bool>* cancel) const {
  const bool cfg = r.cfg_scale != 1.0;
  const int64_t steps = sched.steps();
  const DitArch& A = model_.arch.dit;
  at::Tensor result;
  // Cancel on a device group. Every rank of this process reads the same flag (`cancel`) between
  // DiT blocks, and the first to see it throws RankCancelled. The ranks then agree through the
  // group's failure path rather than through a vote: the throwing rank sets the group's abort
  // flag, which every collective of this process polls, and closes its process groups, so a peer
  // blocked on it (on this node or another) fails at once instead of at its timeout; run() then
  // rebuilds every rank's groups, and the next request starts clean. A vote before each block (a
  // broadcast of rank 0's flag) would make every job pay a collective, and on CUDA a host sync,
  // per block to spare only cancelled jobs that rebuild. Ranks may stop a block apart; the error
  // names where the first one stopped. Other nodes (followers) do not see this process's flag:
  // the rank that stops sets a key for this generation of the groups in the store, which their
  // ranks poll between blocks (at most every 0.2 s, one store round trip), so a follower stops
  // even while its work meets no collective with a stopped rank (a CFG branch on its own node);
  // and at each step's start rank 0 still broadcasts its flag.
  struct Stop {
    std::mutex mu;
    bool set = false;
    int64_t step = 0, block = 0, blocks = 0;
    void record(int64_t st, int64_t b, int64_t n) {
      std::lock_guard<std::mutex> lock(mu);
      if (!set) set = true, step = st, block = b, blocks = n;
    }
  } stop;
  const bool remote = group_->world() > group_->size();  // several nodes
  const std::string cancel_key = concat("wanlab/cancel/gen", group_->generation());
  try {
    group_->run([&](RankState& s) {
      c10::InferenceMode guard;
      RankMemory mem(s.ctx.device);  // this rank's allocations from here on
      const auto t_request = Clock::now();
      log_info("request ", s.request, ": start, ", steps, " steps, latents ", noise.sizes(), cfg ? ", cfg " : "",
               cfg ? std::to_string(r.cfg_scale) : "", s.cfg ? (s.cfg_index ? " (unconditional half)" : " (conditional half)") : "");
      const WanDiT& net = shard_weights_ ? *dits_.at(size_t(s.ctx.rank - group_->first_rank())) : dit(s.ctx.device);
      DitShard shard = make_dit_shard(s, A.num_heads, A.num_layers, net.compute_dtype());
      DenoiseStep step_state;
      step_state.dit = &net, step_state.shard = &shard, step_state.sched = &sched;
      step_state.context = context, step_state.negative = negative, step_state.cfg_scale = r.cfg_scale;
      step_state.skips = skips;
      if (cfg && s.cfg) {  // CFG-parallel: the second half of the group runs the unconditional pass
        step_state.branch = s.cfg_index == 1 ? DenoiseStep::Unconditional : DenoiseStep::Conditional;
        step_state.gather_branches = [&s](const at::Tensor& v) { return s.cfg->all_gather(v, "cfg velocity"); };
      }
      at::Tensor x = noise.to(s.ctx.device);
      int64_t step = 0;  // 1-based, the step in progress
      auto last_poll = Clock::now();
      step_state.in_block = [&](int64_t b, int64_t n) {
        bool now = cancel_set(cancel);
        if (!now && remote && seconds_since(last_poll) >= 0.2) {
          last_poll = Clock::now();
          now = s.store->check(cancel_key);
        }
        if (!now) return;
        if (remote) s.store->set(cancel_key, concat("step ", step, ", block ", b + 1));
        stop.record(step, b + 1, n);
        throw RankCancelled(concat("cancelled at step ", step, "/", steps, ", block ", b + 1, "/", n));
      };
      for (int64_t i = first; i < last; ++i) {
        step = i + 1;
        s.step = i;
        s.ctx.where = concat("step ", i + 1, "/", steps);
        auto t_step = Clock::now();
        const double comm0 = s.ctx.stats.comm_s;
        const int64_t bytes0 = s.ctx.stats.bytes_sent;
        // Rank 0 decides on cancellation; every rank learns it at the same step.
        // On the rank's device: collectives take tensors on it (a CUDA rank's NCCL, or Gloo staging it).
        at::Tensor flag = at::full({1}, (s.ctx.rank == 0 && cancel && cancel->load()) ? 1 : 0,
                                   at::TensorOptions().dtype(at::kInt).device(s.ctx.device));
        flag = s.world->broadcast(flag, 0, "cancel flag");
        if (flag.item<int>() != 0) {
          stop.record(step, 0, 0);
          throw RankCancelled(concat("cancelled at step ", step, "/", steps));
        }
        if (s.step_hook) s.step_hook(s, i);  // tests and tools (parallel/device_group.h StepHook)
        x = denoise_step(step_state, x, i);
        s.step_s.push_back(seconds_since(t_step));
        s.step_comm_s.push_back(s.ctx.stats.comm_s - comm0);
        s.step_bytes.push_back(s.ctx.stats.bytes_sent - bytes0);
        log_debug("request ", s.request, ": ", s.ctx.where, " in ", s.step_s.back(), " s (comm ", s.step_comm_s.back(),
                  " s, ", s.step_bytes.back(), " bytes)");
        if (s.ctx.rank == group_->first_rank()) {
          step_s.push_back(s.step_s.back());
          on_step(i + 1, x);
        }
      }
      s.ctx.where.clear();
      s.peak_bytes = mem.peak_bytes();
      s.peak_method = mem.method();
      const double wall = seconds_since(t_request), comm = s.ctx.stats.comm_s;
      log_info("request ", s.request, ": done in ", wall, " s: compute ", wall - comm, " s, communication ", comm, " s, ",
               s.ctx.stats.bytes_sent, " bytes sent in ", s.ctx.stats.collectives, " collectives, ", s.ctx.stats.checks,
               " device checks, peak ", s.peak_bytes, " bytes allocated");
      if (s.ctx.rank == group_->first_rank()) result = x.to(at::kCPU);  // every rank holds the same x
    });
  } catch (const Error&) {
    if (stop.set) {
      if (stop.block > 0) cancelled_in_step(stop.step, steps, stop.block, stop.blocks);
      cancelled_in_step(stop.step, steps);
    }
    throw;
  }
  return result;
}

}  // namespace wan

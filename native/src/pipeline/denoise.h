// The denoising stage's step, one for every path: T2VEngine::generate runs it on one rank, and
// T2VEngine::denoise_parallel (denoise.cpp) runs it SPMD on every rank of a device group. What
// spans steps stays with the caller's loop: cancel checks at step starts, timing, progress.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "models/dit.h"
#include "pipeline/flow_match.h"

namespace wan {

// What one step needs, and what it keeps from one step to the next (TeaCache's residuals).
struct DenoiseStep {
  const WanDiT* dit = nullptr;
  // This rank's sequence-parallel shard (parallel/sequence_parallel.h make_dit_shard); null: the
  // whole sequence on this rank (WanDiT::forward without a shard).
  const DitShard* shard = nullptr;
  const FlowMatchSchedule* sched = nullptr;
  // [text_len, text_dim] float32 prompt embeddings; `negative` only with CFG (cfg_scale != 1,
  // which runs the unconditional pass and combines nega + cfg_scale · (posi − nega)).
  at::Tensor context, negative;
  double cfg_scale = 1.0;
  // CFG-parallel: this rank runs only its `branch`, and `gather_branches` (set for such a rank)
  // returns both branches' velocities from the two halves of the group, v -> [2, out_dim, f, h, w]
  // (conditional, unconditional). Unset: this rank runs both passes.
  enum Branch { Conditional, Unconditional } branch = Conditional;
  std::function<at::Tensor(const at::Tensor& v)> gather_branches;
  // TeaCache: per step (0-based), whether the blocks are skipped (pipeline/tea_cache.h); empty:
  // off. The residual each branch reuses is kept in its BlockSkip.
  std::vector<bool> skips;
  BlockSkip cond_skip, uncond_skip;
  // The caller's cancel point (models/dit.h DitHooks::in_block): before each block of every pass
  // and between its sublayers. It may throw.
  std::function<void(int64_t block, int64_t blocks)> in_block;
  // Each pass's block output sums (DitHooks::block_sums), this step: read when the step fails.
  std::vector<at::Tensor> cond_sums, uncond_sums;
};

// Sampler step `i` (0-based): the DiT pass(es) at the step's timestep, CFG combined, one Euler
// step; fails naming the first non-finite block when the new latents are not finite.
//   x: [16, f, h, w] float32 where the DiT runs -> the latents after the step, same shape
at::Tensor denoise_step(DenoiseStep& s, const at::Tensor& x, int64_t i);

// The first block (1-based) whose output sum (models/dit.h DitHooks::block_sums) is not finite; 0: none.
int64_t first_nonfinite_block(const std::vector<at::Tensor>& sums);
// The error of a step (1-based, of `steps`) whose latents are not finite, naming the first block
// that went non-finite in the first DiT pass that has one. `sums` per DiT pass of the step:
// {name ("conditional", "unconditional", or "" without CFG), its block sums}.
[[noreturn]] void fail_nonfinite_step(int64_t step, int64_t steps, int64_t blocks,
                                      const std::vector<std::pair<const char*, const std::vector<at::Tensor>*>>& sums);

}  // namespace wan

// The denoising stage: what fails a step whose latents went non-finite, and the step loop of a
// device group (T2VEngine::denoise_parallel), run SPMD on every rank.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace wan {

// The first block (1-based) whose output sum (models/dit.h DitHooks::block_sums) is not finite; 0: none.
int64_t first_nonfinite_block(const std::vector<at::Tensor>& sums);
// The error of a step (1-based, of `steps`) whose latents are not finite, naming the first block
// that went non-finite in the first DiT pass that has one. `sums` per DiT pass of the step:
// {name ("conditional", "unconditional", or "" without CFG), its block sums}.
[[noreturn]] void fail_nonfinite_step(int64_t step, int64_t steps, int64_t blocks,
                                      const std::vector<std::pair<const char*, const std::vector<at::Tensor>*>>& sums);

}  // namespace wan

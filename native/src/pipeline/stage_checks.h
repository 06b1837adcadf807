// What every stage of a generation checks between its units (pipeline/t2v.h): the cancel flag,
// and the Cancelled error that names where it stopped; non-finite results as errors naming the
// stage, never a black video. Each finiteness check is a reduction over a stage's (small) output:
// the latents per step, the embeddings, the video.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace wan {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

inline bool cancel_set(const std::atomic<bool>* cancel) { return cancel && cancel->load(std::memory_order_relaxed); }
// A cancel seen in the denoising stage: at the start of step `step` (1-based) of `steps`, or
// before its block `block` (1-based) of `blocks`.
[[noreturn]] void cancelled_in_step(int64_t step, int64_t steps, int64_t block = 0, int64_t blocks = 0);
// A cancel seen between the units of the encode or decode stage: before unit `part` of `parts`.
[[noreturn]] void cancelled_in(const char* stage, const char* what, const char* unit, int64_t part, int64_t parts);

bool all_finite(const at::Tensor& t);
// "; a NaN or Inf in the <model> weights, or a config value ... is the likely cause".
std::string nonfinite_cause(const char* model);

}  // namespace wan

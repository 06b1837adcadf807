#include "pipeline/stage_checks.h"

#include "pipeline/t2v.h"

namespace wan {

void cancelled_in_step(int64_t step, int64_t steps, int64_t block, int64_t blocks) {
  std::string what = concat("cancelled at step ", step, "/", steps);
  if (block > 0) what += concat(", block ", block, "/", blocks);
  throw Cancelled("denoise", step, steps, block > 0 ? "block" : "", block, blocks, what);
}

void cancelled_in(const char* stage, const char* what, const char* unit, int64_t part, int64_t parts) {
  throw Cancelled(stage, 0, 0, unit, part, parts, concat("cancelled during ", stage, ", ", what, " ", part, "/", parts));
}

bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

std::string nonfinite_cause(const char* model) {
  return concat("; a NaN or Inf in the ", model, " weights, or a config value such as eps out of range, is the likely cause");
}

}  // namespace wan

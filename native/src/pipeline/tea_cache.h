// TeaCache as DiffSynth-Studio's WanVideoPipeline runs it (tea_cache_l1_thresh, tea_cache_model_id):
// a denoising step whose time modulation t_mod moved little since the last computed step skips
// the DiT's blocks and adds that step's residual (blocks' output - input) instead. Per step the
// relative L1 change of t_mod, mean|t_mod - t_mod_prev| / mean|t_mod_prev|, goes through a
// polynomial calibrated per model and accumulates; while the sum stays below the threshold the
// step is skipped, else it is computed and the sum restarts. The first and last steps are always
// computed. t_mod depends on the timestep alone, so which steps skip is known before sampling,
// the same for the prompt and the negative prompt and on every rank of a group.
#pragma once
#include <string>
#include <vector>

#include "models/dit.h"
#include "pipeline/flow_match.h"

namespace wan {

// The calibrations are the ones DiffSynth ships for text-to-video: "Wan2.1-T2V-1.3B" and
// "Wan2.1-T2V-14B" (src/params.ts teaCacheModelIds lists them for the API's own checks;
// test/generate.test.ts holds the two lists equal through the error below, which names them).
// The calibration for `model_id`, or with "" the one that fits the DiT's dims (1.3B: dim 1536,
// 14B: dim 5120); an unknown id, or none fitting, is an error naming the allowed ids.
std::string tea_cache_model(const DitArch& a, const std::string& model_id);

// skipped[i]: step i reuses the residual (model_id as tea_cache_model takes it).
std::vector<bool> tea_cache_skips(const WanDiT& dit, const FlowMatchSchedule& sched, double l1_thresh,
                                  const std::string& model_id);

}  // namespace wan

// Forked runs: a run stopped after step k (T2VRequest::stop_at_step) hands back its latents and
// what a continuation needs; a resumed run (resume_from_step, resume_latents) starts there, with
// the same or other prompts, CFG scale or TeaCache. With unchanged parameters, stopped-then-resumed
// gives the uninterrupted run's latents bit for bit (on one rank and on a device group): the
// latents are the sampler's whole state, kept in float32. One exception: TeaCache's residual is
// not kept, so the first resumed step always runs the DiT's blocks (bit-identical when that step
// was computed in the uninterrupted run too).
//
// The fork state (T2VResult::fork, and in a fork file the metadata key "wanlab.fork"):
//   {"step": k, "steps": n, "sigmas": [n numbers], "model": fingerprint, "seed": "decimal",
//    "shape": [z, f, h, w], "request": request_to_json without token ids}
// A resume is refused before any compute when its latents' shape, its model, its schedule (the
// sigmas) or its step do not fit the engine and the request, naming which.
#pragma once
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "checkpoint/layout.h"
#include "pipeline/flow_match.h"
#include "pipeline/request.h"

namespace wan {

// A cheap identity of a model's DiT weights, "fnv1a64:<16 hex>": every DiT tensor's name, dtype
// and shape and the first MiB of the patch embedding, the first block's query and the head. The
// same checkpoint in another layout or on another machine gives the same value; call it before
// the loaded tensors are released.
std::string dit_fingerprint(const LoadedModel& m);

// The fork state of a run of `r` stopped after `step` on `sched`, for latents of `shape`.
nlohmann::json fork_state(const T2VRequest& r, const FlowMatchSchedule& sched, int64_t step,
                          const std::vector<int64_t>& shape, const std::string& model);

// Checks stop_at_step and the resume fields against the schedule, the latent shape [z, f, h, w]
// and the engine's model fingerprint; ParamErrors on "stop_at_step" or "resume".
void check_fork(const T2VRequest& r, const FlowMatchSchedule& sched, const std::vector<int64_t>& shape,
                const std::string& model);

}  // namespace wan

// What a device group's ranks did in the last request, as generate() reports it
// (T2VResult::timings["ranks"]).
#pragma once
#include <nlohmann/json.hpp>

#include "parallel/device_group.h"

namespace wan {

// One object per rank of this node: {rank, device, compute_s (step wall time minus time inside
// collectives, waiting included), comm_s, bytes_sent (payload handed to collectives),
// collectives, checks, check_s, peak_bytes and peak_method (parallel/rank_memory.h), and per
// step step_s, step_compute_s, step_comm_s, step_bytes}.
nlohmann::json rank_stats_json(const DeviceGroup& group);

}  // namespace wan

// What overlapping communication with compute buys in sequence-parallel attention, measured on
// CPU ranks (threads of this process, Gloo over loopback: the only multi-rank hardware CI has).
// The same attention runs twice per layout in one command: the engine's schedule (the ring's next
// pass in flight during this pass's attention; Ulysses in kUlyssesChunks head groups, each
// group's transfers beside another group's attention) and the sequential one (every transfer
// waited before the compute that follows it; Ulysses in one group).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

// layout "ulysses" or "ring" over `ranks` thread ranks; q, k, v [1, heads, tokens / ranks,
// head_dim] float32 per rank. Per schedule: median seconds per call (slowest rank), exposed
// communication (time blocked in collectives) and the rest, and the output's rel L2 between the
// two schedules.
nlohmann::json bench_overlap(const std::string& layout, int ranks, int64_t tokens, int64_t heads, int64_t head_dim,
                             int iters = 5);

}  // namespace wan

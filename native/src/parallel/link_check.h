// The links between the ranks of a group, measured: the pre-flight check (parallel/preflight.h),
// then each collective the engine uses — all-to-all (Ulysses), all-gather (sharded weights, the
// final gather, CFG-parallel), send/recv around the ring (ring passes) — timed at several message
// sizes on every rank of this node: the median latency per call and the payload bytes per second.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/preflight.h"

namespace wan {

struct LinkCheckOptions {
  PreflightOptions group;                                   // the ranks, as for the engine
  std::vector<int64_t> sizes{4096, 65536, 1 << 20, 16 << 20};  // bytes each rank hands over per call
  int reps = 5;                                              // timed calls per size (after one warm-up)
};

struct LinkMeasure {
  std::string op;       // "all_to_all", "all_gather", "send/recv"
  int64_t bytes = 0;    // per rank per call
  double latency_s = 0; // median over the timed calls of the slowest local rank
  double bytes_per_s = 0;
};

struct LinkReport {
  PreflightResult preflight;
  int world = 1;
  std::vector<LinkMeasure> measures;
};

LinkReport check_links(const LinkCheckOptions& o);

// One collective timed on `c`: op 0 all-to-all, 1 all-gather, 2 send/recv (to member `to`, from
// member `from`) of about `bytes` per rank (float32 elements, a multiple of the group's size), each
// call after a barrier, `reps` timed calls after one warm-up: the median seconds per call. *sent:
// the bytes each rank actually handed over per call.
double time_collective(Communicator& c, int op, int64_t bytes, int reps, int to, int from, const at::Device& device,
                       int64_t* sent = nullptr);

}  // namespace wan

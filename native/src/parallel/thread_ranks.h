// A group of CPU ranks as threads of this process, without a device group: one Gloo process group
// over a loopback TCPStore, for measuring or testing a collective schedule on its own
// (`wanlab-engine bench overlap`, the overlap tests).
#pragma once
#include <chrono>
#include <functional>
#include <string>

#include "parallel/process_group.h"

namespace wan {

// Runs fn(ctx, c) on `ranks` threads, rank r with ctx.rank = r on "cpu:r", all members of one
// group `name` with collective timeout `timeout`; returns when every thread has. A rank's error is
// rethrown as "NAME: rank R: what" (the lowest failing rank's).
void run_thread_ranks(int ranks, const std::string& name, std::chrono::milliseconds timeout,
                      const std::function<void(RankContext& ctx, Communicator& c)>& fn);

}  // namespace wan

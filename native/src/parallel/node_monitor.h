// Liveness of the other nodes (processes) of a multi-process device group, through the TCPStore
// that joined them. Each node bumps its counter `hb/node/K` every 250 ms from a thread of its own;
// a node whose counter has not moved for 3 s has died or is stopped. The store is served by node 0,
// so when node 0 goes the others see the store stop answering.
//
// After a failed request each node also publishes its root-cause error (`fail/G/node/K`, G the
// group's generation), so a node that only saw a broken connection can name what happened there.
// All store I/O happens on the heartbeat thread (a stopped node 0 can block a store call), so the
// verdict after a failure never waits longer than it was told to.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "parallel/process_group.h"

namespace wan {

class NodeMonitor {
 public:
  NodeMonitor(const std::string& host, uint16_t port, int nnodes, int node_rank, int ranks_per_node,
              std::chrono::milliseconds timeout);
  ~NodeMonitor();
  NodeMonitor(const NodeMonitor&) = delete;
  NodeMonitor& operator=(const NodeMonitor&) = delete;

  struct Verdict {
    std::string dead;   // "node 1 (ranks 2-3) stopped responding (...)"; "" if every node is alive
    std::string peers;  // "node 1: <its error>; ..." published by live nodes for this generation
  };
  // After a failure of generation `gen`: publishes this node's error, then waits up to `wait` until
  // every other node has either published its own error or stopped responding.
  Verdict after_failure(int64_t gen, const std::string& error, std::chrono::milliseconds wait);

  static constexpr std::chrono::milliseconds kInterval{250}, kStale{3000};

 private:
  // Everything the heartbeat thread touches: shared with it, so a thread stuck in a store call to a
  // stopped node 0 can be left behind when the monitor goes (it exits once the call returns).
  struct State;
  static void beat(const std::shared_ptr<State>& st);
  std::shared_ptr<State> st_;
};

}  // namespace wan

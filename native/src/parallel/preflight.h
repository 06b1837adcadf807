// The pre-flight check of a multi-process device group, run before any weights load: every node
// meets the others in the rendezvous store within a short timeout, they compare engine builds and
// model fingerprints and the GPUs they claim, then every rank runs one of each collective the
// engine uses (all-gather, all-to-all, send/recv, barrier) on its own device and checks what
// arrived. Each failure is an error naming the rank, its host and device, and what failed; a rank
// that never joins is named within the timeout, never waited for.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/layout.h"
#include "parallel/devices.h"
#include "parallel/layout_auto.h"
#include "parallel/process_group.h"

namespace wan {

// What the nodes compare: the libtorch version and flavour (CUDA, NCCL), the compiler and the
// wire format of wanlab's store keys and collectives.
std::string engine_build();

// A fingerprint of a loaded model without reading its weights: every tensor's name, dtype and
// shape, and the first and last 64 bytes of each tensor held in host memory (the pages a
// memory-mapped tensor starts and ends on), hashed (FNV-1a 64), e.g. "9f2c…e1 (1234 tensors)".
std::string weights_fingerprint(const LoadedModel& m);

struct PreflightOptions {
  std::string host = "127.0.0.1";  // the store: served by node 0 at host:port, joined by the others
  int port = 0;
  int nnodes = 1, node_rank = 0;
  std::vector<DeviceSpec> devices;  // this node's ranks (node K's ranks are K * devices.size() + i)
  std::chrono::milliseconds timeout{60000};  // for all of it
  std::string model;                // weights_fingerprint; "" = not compared
  // > 0: after the smoke collectives, measure what layout auto weighs (parallel/layout_auto.h):
  // send/recv of 4 KiB (latency) and 512 KiB (bandwidth) within a host and across hosts (as
  // group_by_host groups the ranks), a 64 KiB all-to-all within a host and over the group, and an
  // attention probe at this head dim per rank.
  int64_t probe_head_dim = 0;
  std::string host_name;  // the host this node publishes; "" = this machine's host name
  // How the ranks exchange tensors, as the engine's group will (choose_transport): Gloo for a GPU
  // shared by several ranks (cuda:KxN), whose ranks are then not refused for sharing it.
  Transport transport = Transport::Default;
};

// What each node published.
struct PreflightNode {
  int node = 0, first_rank = 0;
  std::string host, devices, build, model;
  long pid = 0;
};

// Which ranks share a host, for layout auto (LayoutInputs::ranks_per_node, unit, grouping): the
// ranks on one host, counted from the hosts the nodes published (one host of several processes, as
// under torchrun --nproc-per-node, is one node of all its ranks). Hosts holding unequal numbers of
// ranks, or a host whose ranks are not consecutive, fall back to one node per process, saying so.
struct HostGrouping {
  int ranks_per_node = 1;  // ranks per host (or per process, falling back)
  std::string unit = "host", text;  // "host" or "process"; the reason's words for where it came from
};
HostGrouping group_by_host(const std::vector<PreflightNode>& nodes, int local);

struct PreflightResult {
  std::shared_ptr<Rendezvous> store;  // node 0's served store, or this node's client: the device group's
  std::vector<PreflightNode> nodes;
  HostGrouping hosts;        // group_by_host(nodes): what "within" and "across" measure
  double meet_s = 0;         // until every node had joined
  double collectives_s = 0;  // the smoke collectives
  MeasuredLinks links;       // probe_head_dim > 0: the slowest rank's figures, the same on every node
  double all_to_all_within_s = 0, all_to_all_group_s = 0;  // the 64 KiB all-to-alls (0 = not run)
};

// Runs the check on this node (every node calls it with the same nnodes, port and devices count).
PreflightResult preflight(const PreflightOptions& o);

}  // namespace wan

// `--layout auto` (`layout: "auto"`): the sequence-parallel layout chosen from the ranks, the
// DiT's heads, where the ranks sit (which ranks share a host: a "node" here is a host, whatever
// number of processes run on it) and — for a group of several processes — the links and the
// per-rank compute the pre-flight check measured, by one rule (docs/parallel.md#layout-auto):
//  1. CFG-parallel when the ranks are even: the conditional and unconditional passes run on two
//     halves, whose only exchange is one all-gather of the velocity per step.
//  2. Ulysses takes the largest degree that divides the ranks of a branch and the heads and, when
//     the group spans several hosts, the ranks of one host (Ulysses' all-to-alls stay on a host's
//     fast links; from 4 ranks up they move fewer bytes than ring passes, at 2 the same).
//  3. The ring takes the rest (its point-to-point passes overlap with attention and cross hosts).
//  4. Measured links whose across-host bandwidth is at least kSlowLink times below the within-host
//     one: every layout ulysses x ring x cfg of the ranks is scored by the step-time model below
//     (layout_cost), and the cheapest replaces rules 1-3's pick when it is at least kClearGain
//     times faster. Uniform links, one host, or nothing measured: rules 1-3 alone.
// Layouts that cannot work are refused naming the rule: fewer tokens than ranks per branch, a
// Ulysses degree that does not divide the heads. A given layout whose ring crosses a slow link
// while layout auto would keep it within hosts is warned about (review_layout).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/devices.h"

namespace wan {

// Across-host bandwidth this many times below within-host makes the host boundary slow (rule 4).
constexpr double kSlowLink = 4.0;
// Rule 4 replaces rules 1-3's pick only with a layout this many times faster per modelled step.
constexpr double kClearGain = 1.1;
// Tokens the model scores at when the request is not known yet (480x832, 81 frames: 21 x 30 x 52).
constexpr int64_t kReferenceTokens = 32760;

// One kind of link between ranks: payload bytes per second and seconds per call (0 = not measured).
struct LinkSpeed {
  double bytes_per_s = 0, latency_s = 0;
  bool measured() const { return bytes_per_s > 0; }
};

// What the pre-flight check measured (parallel/preflight.h), the slowest rank's figures.
struct MeasuredLinks {
  LinkSpeed within;          // send/recv between ranks of one host (needs 2+ ranks per host)
  LinkSpeed across;          // send/recv between ranks of neighbouring hosts (needs 2+ hosts)
  double flops_per_s = 0;    // the compute probe: attention at the DiT's head dim, per rank
  double probe_s = 0;        // the probe's time
  bool measured() const { return within.measured() || across.measured() || flops_per_s > 0; }
  // The across-host link is at least kSlowLink times slower than the within-host one.
  bool slow_boundary() const {
    return within.measured() && across.measured() && across.bytes_per_s * kSlowLink <= within.bytes_per_s;
  }
};

struct LayoutInputs {
  LayoutInputs(int ranks_ = 1, int heads_ = 1, int ranks_per_node_ = 0, int64_t tokens_ = 0)
      : ranks(ranks_), heads(heads_), ranks_per_node(ranks_per_node_), tokens(tokens_) {}
  int ranks = 1;            // the whole group
  int heads = 1;            // the DiT's attention heads
  int ranks_per_node = 0;   // several processes: the ranks on each host (group_by_host in
                            // parallel/preflight.h); 0 = all on one host
  int64_t tokens = 0;       // the DiT's tokens for a request's video; 0 = not known yet
  // What a node of ranks_per_node is ("host", or "process" when the hosts cannot be grouped) and
  // where the grouping came from, quoted in the reason ("" = thread ranks of one process: nothing).
  std::string unit = "host", grouping;
  // The step-time model's inputs (rule 4 and review_layout): the DiT's sizes, the bytes per
  // activation element (4 float32, 2 bf16) and the measured links. dim 0 = no model.
  int64_t dim = 0, ffn_dim = 0, layers = 0;
  int elem_bytes = 2;
  MeasuredLinks links;
};

struct LayoutChoice {
  ParallelLayout layout;
  std::string reason;  // which rule picked each degree, e.g. "cfg-parallel 2: 4 ranks are even; ..."
};

LayoutChoice auto_layout(const LayoutInputs& in);

// Refuses a layout whose sequence-parallel ranks exceed the tokens (every rank needs one), naming
// the rule, the video's tokens and the ranks.
void check_layout_tokens(const ParallelLayout& l, int64_t tokens);

// One layout's modelled denoising step on the measured links, per rank (the slowest rank):
// compute = the DiT's flops for this rank's tokens (padding included) / the probe's flops per
// second; comm = every collective's wire bytes over the link it crosses + calls x its latency,
// charged in full (the engine hides part of both Ulysses' and the ring's transfers behind
// attention alike). across_s: the part spent on across-host links.
struct LayoutCost {
  ParallelLayout layout;
  double compute_s = 0, comm_s = 0, across_s = 0;
  double step_s() const { return compute_s + comm_s; }
};
LayoutCost layout_cost(const LayoutInputs& in, const ParallelLayout& l);

// Every layout cfg x ulysses x ring of the ranks that can work: cfg 2 only on even ranks, ulysses
// dividing the heads, sequence-parallel ranks within the tokens (when known).
std::vector<ParallelLayout> layout_candidates(const LayoutInputs& in);

// A layout given by degrees, checked against the same rules before any load: refused when its
// Ulysses degree does not divide the heads or its ranks exceed the tokens; a warning ("" = none)
// when its ring crosses a slow host boundary and layout auto's pick is modelled clearly faster.
std::string review_layout(const LayoutInputs& in, const ParallelLayout& l);

// "within a host 1.2 GB/s, 45 us; across hosts 0.1 GB/s, 300 us (12x slower); compute 3.4 GFLOP/s
// (probe 12 ms)": the measured figures a reason quotes (`unit`: "host" or "process").
std::string links_text(const MeasuredLinks& m, const std::string& unit = "host");

// "hosts", "processes": the plural of a LayoutInputs::unit.
std::string units(const std::string& unit);

}  // namespace wan

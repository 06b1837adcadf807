// `--layout auto` (parallel/layout_auto.h) against its documented rule for several rank and head
// counts, on one host and across hosts (a node is a host, whatever processes run on it); a layout
// with more ranks than tokens is refused. On made-up link tables: uniform links keep rules 1-3's
// pick, a slow link between hosts lets the step-time model choose (rule 4), and a given layout is
// refused or warned about naming the rule.
#include <cmath>

#include "common/error.h"
#include "parallel/layout_auto.h"
#include "test.h"

using namespace wan;

namespace {
void expect(int ranks, int heads, int per_node, int u, int r, int cfg) {
  const LayoutChoice c = auto_layout({ranks, heads, per_node, 0});
  if (c.layout.ulysses != u || c.layout.ring != r || c.layout.cfg != cfg || c.layout.devices != ranks)
    throw wantest::Failure{wan::concat(ranks, " ranks, ", heads, " heads, ", per_node, " per node: got ulysses ",
                                  c.layout.ulysses, " ring ", c.layout.ring, " cfg ", c.layout.cfg, ", expected ", u,
                                  " ", r, " ", cfg, " (", c.reason, ")")};
}
}  // namespace

TEST(layout_auto_follows_the_rule_on_one_node) {
  expect(1, 40, 0, 1, 1, 1);
  expect(2, 40, 0, 1, 1, 2);   // rule 1: even -> cfg 2, one rank per branch
  expect(3, 12, 0, 3, 1, 1);   // odd: no cfg; 3 divides 12 heads
  expect(4, 40, 0, 2, 1, 2);
  expect(8, 40, 0, 4, 1, 2);   // 14B: cfg 2 x ulysses 4
  expect(8, 12, 0, 4, 1, 2);   // 1.3B: 4 divides 12
  expect(16, 12, 0, 4, 2, 2);  // 8 per branch, gcd(8, 12) = 4 -> ring 2
  expect(4, 2, 0, 2, 1, 2);    // the tiny model's 2 heads
  expect(8, 2, 0, 2, 2, 2);
  expect(5, 2, 0, 1, 5, 1);    // no degree > 1 divides 5 and 2 heads: ring 5
  expect(6, 40, 0, 1, 3, 2);   // 3 per branch, gcd(3, 40) = 1 -> ring 3
}

TEST(layout_auto_keeps_ulysses_within_a_host) {
  expect(16, 40, 8, 8, 1, 2);  // 2 hosts of 8: cfg 2, ulysses 8 = a host
  expect(16, 40, 4, 4, 2, 2);  // 4 hosts of 4: ulysses 4 on a host, ring 2 across hosts
  expect(8, 40, 2, 2, 2, 2);   // 4 hosts of 2
  expect(4, 40, 1, 1, 2, 2);   // 4 hosts of one rank each: ring across them
  // torchrun --nproc-per-node N on one host: one rank per process, all N ranks on the host
  expect(4, 40, 4, 2, 1, 2);
  expect(8, 40, 8, 4, 1, 2);   // 8 GPUs of one host: cfg 2 x ulysses 4, no ring
  expect(16, 40, 8, 8, 1, 2);  // torchrun --nnodes 2 --nproc-per-node 8
}

TEST(layout_auto_quotes_how_the_ranks_were_grouped) {
  LayoutInputs in{4, 2, 4, 0};
  in.grouping = "4 ranks per host (all on host vm, 4 processes; from the hosts the pre-flight exchanged)";
  EXPECT(auto_layout(in).reason == "cfg-parallel 2: 4 ranks are even (rule 1); ulysses 2: the largest degree dividing "
                                   "the 2 ranks per branch and the 2 heads (rule 2); 4 ranks per host (all on host vm, 4 "
                                   "processes; from the hosts the pre-flight exchanged)");
  // hosts that cannot be grouped: one node per process, named so
  LayoutInputs per{4, 2, 1, 0};
  per.unit = "process", per.grouping = "1 rank per process, not per host: hosts hold unequal ranks (a 3, b 1)";
  const LayoutChoice c = auto_layout(per);
  EXPECT(c.layout.ulysses == 1 && c.layout.ring == 2 && c.layout.cfg == 2);
  EXPECT(c.reason.find("the 2 heads within a process's 1 ranks (rule 2); ring 2: the rest (rule 3); 1 rank per process, "
                       "not per host: hosts hold unequal ranks (a 3, b 1)") != std::string::npos);
  EXPECT_ERROR(auto_layout(LayoutInputs{6, 40, 4, 0}), "6 ranks are not whole hosts of 4");
}

TEST(layout_auto_says_why_and_refuses_more_ranks_than_tokens) {
  const LayoutChoice c = auto_layout({16, 12, 0, 0});
  EXPECT(c.reason == "cfg-parallel 2: 16 ranks are even (rule 1); ulysses 4: the largest degree dividing the 8 ranks "
                    "per branch and the 12 heads (rule 2); ring 2: the rest (rule 3)");
  EXPECT_ERROR(auto_layout({16, 12, 0, 6}), "8 sequence-parallel ranks but only 6 tokens", "ranks beyond tokens");
  EXPECT_ERROR(check_layout_tokens({4, 2, 2, 1}, 3), "ulysses 2 x ring 2 x cfg 1: 4 sequence-parallel ranks but only 3");
  EXPECT_ERROR(auto_layout({6, 40, 4, 0}), "6 ranks are not whole hosts of 4");
}

namespace {
// A made-up group of the 14B's sizes (dim 5120, FFN 13824, 40 layers, bf16) at 480x832x81 (32760
// tokens) on made-up links: within a host `within` GB/s and 5 us, across hosts `across` GB/s and
// 20 us, 400 TFLOP/s of compute.
LayoutInputs measured(int ranks, int heads, int per_node, double within, double across, int64_t tokens = 32760) {
  LayoutInputs in{ranks, heads, per_node, tokens};
  in.dim = 5120, in.ffn_dim = 13824, in.layers = 40, in.elem_bytes = 2;
  in.links.within = {within * 1e9, 5e-6};
  if (per_node > 0 && per_node < ranks) in.links.across = {across * 1e9, 20e-6};
  in.links.flops_per_s = 400e12, in.links.probe_s = 1e-3;
  return in;
}

void expect_measured(const LayoutInputs& in, int u, int r, int cfg) {
  const LayoutChoice c = auto_layout(in);
  if (c.layout.ulysses != u || c.layout.ring != r || c.layout.cfg != cfg)
    throw wantest::Failure{wan::concat(in.ranks, " ranks, ", in.heads, " heads, ", in.ranks_per_node,
                                       " per host: got ulysses ", c.layout.ulysses, " ring ", c.layout.ring, " cfg ",
                                       c.layout.cfg, ", expected ", u, " ", r, " ", cfg, " (", c.reason, ")")};
}
}  // namespace

TEST(layout_auto_on_uniform_measured_links_keeps_the_rule_and_quotes_the_figures) {
  for (int ranks : {2, 3, 4, 6, 8, 16})
    for (int heads : {2, 12, 40}) {
      const LayoutChoice plain = auto_layout({ranks, heads, 0, 0});
      expect_measured(measured(ranks, heads, 0, 100, 100), plain.layout.ulysses, plain.layout.ring, plain.layout.cfg);
      for (int per_node : {1, 2, 4})
        if (ranks % per_node == 0 && per_node < ranks) {
          const LayoutChoice nodes = auto_layout({ranks, heads, per_node, 0});
          expect_measured(measured(ranks, heads, per_node, 100, 60), nodes.layout.ulysses, nodes.layout.ring,
                          nodes.layout.cfg);
        }
    }
  const LayoutChoice c = auto_layout(measured(8, 40, 4, 100, 60));
  EXPECT(c.reason.rfind("cfg-parallel 2: 8 ranks are even (rule 1); ulysses 4: ", 0) == 0);
  if (c.reason.find("; links: within a host 100 GB/s, 5 us; across hosts 60 GB/s, 20 us (1.67x slower); compute "
                      "400 TFLOP/s (probe 1 ms): across hosts less than 4x slower than within, rules 1-3 stand (rule 4); "
                      "modelled ") ==
        std::string::npos)
    throw wantest::Failure{c.reason};
}

TEST(layout_auto_on_a_slow_link_between_hosts_keeps_ulysses_within_a_host_and_runs_the_ring_across) {
  // 4 hosts of 4, 400 GB/s within, 25 GB/s across (16x slower): cfg 2 x ulysses 4 x ring 2.
  expect_measured(measured(16, 40, 4, 400, 25), 4, 2, 2);
  // 2 hosts of 8: each CFG branch is a host, nothing but the velocity crosses
  expect_measured(measured(16, 40, 8, 400, 25), 8, 1, 2);
  // one host of 8 processes, its links measured within it: rules 1-3, "one host"
  const LayoutChoice one = auto_layout(measured(8, 40, 8, 400, 25));
  EXPECT(one.layout.cfg == 2 && one.layout.ulysses == 4 && one.layout.ring == 1);
  EXPECT(one.reason.find("links: within a host 400 GB/s, 5 us; compute 400 TFLOP/s (probe 1 ms): one host, rules 1-3 "
                         "stand (rule 4)") != std::string::npos);
  // 3 hosts of 2 with 12 heads: rules 1-3 give ring 3 across hosts; Ulysses 3 sends a third of its
  // all-to-all across and beats it, which rule 4 takes, saying why.
  EXPECT(auto_layout({6, 12, 2, 0}).layout.ring == 3);
  const LayoutChoice c = auto_layout(measured(6, 12, 2, 400, 2));
  EXPECT(c.layout.cfg == 2 && c.layout.ulysses == 3 && c.layout.ring == 1);
  EXPECT(c.reason.rfind("cfg 2 x ulysses 3 x ring 1: the fastest modelled layout on these links (within a host 400 "
                       "GB/s, 5 us; across hosts 2 GB/s, 20 us (200x slower)", 0) == 0);
  EXPECT(c.reason.find("for rules 1-3's cfg 2 x ulysses 1 x ring 3 (rule 4)") != std::string::npos);
}

TEST(layout_cost_charges_the_slow_link_and_the_compute_share) {
  const LayoutInputs in = measured(16, 40, 4, 400, 25);
  const LayoutCost inside = layout_cost(in, {16, 4, 2, 2});
  EXPECT(inside.compute_s > 0 && inside.comm_s > 0 && inside.across_s > 0 && inside.across_s < inside.comm_s);
  // 2 hosts of 4: Ulysses 8 sends half its all-to-all over 25 GB/s, Ulysses 4 keeps it within
  const LayoutInputs two = measured(8, 40, 4, 400, 25);
  const LayoutCost within = layout_cost(two, {8, 4, 1, 2}), across = layout_cost(two, {8, 8, 1, 1});
  EXPECT(across.across_s > 4 * within.across_s && across.step_s() > within.step_s());
  // the same share of the work: cfg 2 x 4 ranks per branch, or 8 ranks making both passes
  EXPECT(std::abs(within.compute_s - across.compute_s) < 1e-9 * within.compute_s);
  LayoutInputs slow_compute = in;
  slow_compute.links.flops_per_s /= 10;
  EXPECT(std::abs(layout_cost(slow_compute, {16, 4, 2, 2}).compute_s - 10 * inside.compute_s) < 1e-6 * inside.compute_s);
  // one host: nothing across
  EXPECT(layout_cost(measured(8, 40, 0, 400, 25), {8, 4, 1, 2}).across_s == 0);
}

TEST(layout_review_refuses_heads_not_divisible_and_ranks_beyond_tokens_and_warns_of_a_ring_across_a_slow_link) {
  EXPECT_ERROR(review_layout(measured(6, 40, 0, 100, 100), {6, 3, 1, 2}), "ulysses 3 does not divide the DiT's 40 heads",
               "heads not divisible");
  EXPECT_ERROR(review_layout(measured(8, 40, 0, 100, 100, 3), {8, 4, 1, 2}),
               "4 sequence-parallel ranks but only 3 tokens", "ranks beyond tokens");
  const std::string w = review_layout(measured(8, 40, 4, 400, 25), {8, 1, 8, 1});
  EXPECT(w.find("layout cfg 1 x ulysses 1 x ring 8 runs its ring across hosts over a slow link (within a host 400 GB/s") == 0);
  EXPECT(w.find("where layout auto's cfg 2 x ulysses 4 x ring 1 keeps more within hosts") != std::string::npos);
  EXPECT(w.find("(ring across a slow link, rule 4)") != std::string::npos);
  EXPECT(review_layout(measured(8, 40, 4, 400, 25), {8, 4, 1, 2}).empty());   // within hosts
  EXPECT(review_layout(measured(8, 40, 4, 400, 300), {8, 1, 8, 1}).empty());  // links not a clear factor apart
  EXPECT(review_layout(measured(8, 40, 0, 400, 25), {8, 1, 8, 1}).empty());   // one host
  EXPECT(review_layout(measured(8, 40, 8, 400, 25), {8, 1, 8, 1}).empty());   // one host of 8 processes
}

TEST(layout_candidates_are_every_split_of_the_ranks_that_can_work) {
  // 8 ranks, 12 heads: cfg 2 x (ulysses 4, 2, 1), cfg 1 x (ulysses 4, 2, 1); 8 does not divide 12
  EXPECT(layout_candidates(measured(8, 12, 0, 1, 1, 0)).size() == 6);
  // 4 tokens: only the CFG-parallel halves of 4 ranks fit
  for (const ParallelLayout& l : layout_candidates(measured(8, 40, 0, 1, 1, 4))) EXPECT(l.cfg == 2);
  EXPECT(layout_candidates(measured(8, 40, 0, 1, 1, 4)).size() == 3);
  EXPECT(layout_candidates(measured(8, 40, 0, 1, 1, 3)).empty());
}

// `--layout auto` (parallel/layout_auto.h) against its documented rule for several rank and head
// counts, on one node and across nodes; a layout with more ranks than tokens is refused.
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

TEST(layout_auto_keeps_ulysses_within_a_node) {
  expect(16, 40, 8, 8, 1, 2);  // 2 nodes of 8: cfg 2, ulysses 8 = a node
  expect(16, 40, 4, 4, 2, 2);  // 4 nodes of 4: ulysses 4 on a node, ring 2 across nodes
  expect(8, 40, 2, 2, 2, 2);   // 4 nodes of 2
  expect(4, 40, 1, 1, 2, 2);   // one rank per process (torchrun on 4 nodes): ring across them
}

TEST(layout_auto_says_why_and_refuses_more_ranks_than_tokens) {
  const LayoutChoice c = auto_layout({16, 12, 0, 0});
  CHECK(c.reason == "cfg-parallel 2: 16 ranks are even (rule 1); ulysses 4: the largest degree dividing the 8 ranks "
                    "per branch and the 12 heads (rule 2); ring 2: the rest (rule 3)");
  EXPECT_ERROR(auto_layout({16, 12, 0, 6}), "8 sequence-parallel ranks but only 6 tokens", "ranks beyond tokens");
  EXPECT_ERROR(check_layout_tokens({4, 2, 2, 1}, 3), "ulysses 2 x ring 2 x cfg 1: 4 sequence-parallel ranks but only 3");
  EXPECT_ERROR(auto_layout({6, 40, 4, 0}), "6 ranks are not whole nodes of 4");
}

// `--layout auto` (`layout: "auto"`): the sequence-parallel layout chosen from the ranks, the
// DiT's heads and where the ranks sit, by one rule (docs/parallel.md#layout-auto):
//  1. CFG-parallel when the ranks are even: the conditional and unconditional passes run on two
//     halves, whose only exchange is one all-gather of the velocity per step.
//  2. Ulysses takes the largest degree that divides the ranks of a branch and the heads and, when
//     the group spans several nodes, the ranks of one node (Ulysses' all-to-alls stay on a node's
//     fast links; from 4 ranks up they move fewer bytes than ring passes, at 2 the same).
//  3. The ring takes the rest (its point-to-point passes overlap with attention and cross nodes).
// Layouts that cannot work are refused naming the rule: fewer tokens than ranks per branch.
#pragma once
#include <cstdint>
#include <string>

#include "parallel/devices.h"

namespace wan {

struct LayoutInputs {
  int ranks = 1;            // the whole group
  int heads = 1;            // the DiT's attention heads
  int ranks_per_node = 0;   // several processes: ranks on each; 0 = all on one node
  int64_t tokens = 0;       // the DiT's tokens for a request's video; 0 = not known yet
};

struct LayoutChoice {
  ParallelLayout layout;
  std::string reason;  // which rule picked each degree, e.g. "cfg-parallel 2: 4 ranks are even; ..."
};

LayoutChoice auto_layout(const LayoutInputs& in);

// Refuses a layout whose sequence-parallel ranks exceed the tokens (every rank needs one), naming
// the rule, the video's tokens and the ranks.
void check_layout_tokens(const ParallelLayout& l, int64_t tokens);

}  // namespace wan

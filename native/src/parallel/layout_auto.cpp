#include "parallel/layout_auto.h"

#include <numeric>

#include "common/error.h"

namespace wan {

LayoutChoice auto_layout(const LayoutInputs& in) {
  if (in.ranks < 1) fail("layout auto: needs at least one rank, got ", in.ranks);
  if (in.heads < 1) fail("layout auto: the DiT has no attention heads (", in.heads, ")");
  if (in.ranks_per_node < 0 || (in.ranks_per_node > 0 && in.ranks % in.ranks_per_node != 0))
    fail("layout auto: ", in.ranks, " ranks are not whole nodes of ", in.ranks_per_node);
  LayoutChoice c;
  ParallelLayout& l = c.layout;
  l.devices = in.ranks;
  std::string why;
  if (in.ranks == 1) {
    c.reason = "one rank: no parallel layout";
    return c;
  }
  // Rule 1: CFG-parallel on two halves when the ranks are even.
  l.cfg = in.ranks % 2 == 0 ? 2 : 1;
  why = l.cfg == 2 ? concat("cfg-parallel 2: ", in.ranks, " ranks are even (rule 1)")
                   : concat("no cfg-parallel: ", in.ranks, " ranks are odd (rule 1)");
  const int n = in.ranks / l.cfg;
  // Rule 2: Ulysses, the largest degree dividing n, the heads and (several nodes) a node's ranks.
  int cap = std::gcd(n, in.heads);
  if (in.ranks_per_node > 0 && in.ranks_per_node < in.ranks) cap = std::gcd(cap, in.ranks_per_node);
  l.ulysses = cap;
  l.ring = n / l.ulysses;
  if (n > 1) {
    why += concat("; ulysses ", l.ulysses, ": the largest degree dividing the ", n, " rank", n == 1 ? "" : "s",
                  " per branch and the ", in.heads, " heads");
    if (in.ranks_per_node > 0 && in.ranks_per_node < in.ranks)
      why += concat(" within a node's ", in.ranks_per_node, " ranks");
    why += " (rule 2)";
    if (l.ring > 1) why += concat("; ring ", l.ring, ": the rest (rule 3)");
  }
  c.reason = why;
  if (in.tokens > 0) check_layout_tokens(l, in.tokens);
  return c;
}

void check_layout_tokens(const ParallelLayout& l, int64_t tokens) {
  const int sp = l.sequence_parallel();
  if (tokens < sp)
    fail("layout ulysses ", l.ulysses, " x ring ", l.ring, " x cfg ", l.cfg, ": ", sp, " sequence-parallel ranks but only ",
         tokens, " tokens in this video's DiT sequence (ranks beyond tokens: every rank needs at least one); use fewer "
         "ranks or a larger video");
}

}  // namespace wan

#include "parallel/ulysses.h"

#include <algorithm>
#include <vector>

#include "common/error.h"

namespace wan {

int64_t ulysses_head_groups(int64_t heads_per_member, int64_t chunks) {
  int64_t g = std::max<int64_t>(1, std::min<int64_t>(chunks, heads_per_member));
  while (heads_per_member % g != 0) --g;
  return g;
}

at::Tensor ulysses_attention(Communicator& c, const at::Tensor& qkv, int chunks,
                             const std::function<at::Tensor(const at::Tensor& qkv)>& attend) {
  const int64_t u = c.size(), n = qkv.size(0), H = qkv.size(1), Ls = qkv.size(2), d = qkv.size(3);
  if (H % u != 0) fail("ulysses: ", H, " heads are not divisible by the Ulysses degree ", u, " (group ", c.name(), ")");
  const int64_t hm = H / u;  // heads per member
  const int64_t G = ulysses_head_groups(hm, chunks);
  const int64_t hc = hm / G;  // heads per group and member
  // [n, H, Ls, d] -> [n, u, G, hc, Ls, d]: member i's heads, in G groups of hc.
  const at::Tensor x = qkv.view({n, u, G, hc, Ls, d});
  auto send_in = [&](int64_t g) {  // [u, n, hc, Ls, d]: block i (member i's heads of group g) to member i
    return c.start_all_to_all(x.select(2, g).transpose(0, 1).contiguous(), "ulysses q/k/v");
  };
  std::vector<Pending> back(G);
  Pending next = send_in(0);
  for (int64_t g = 0; g < G; ++g) {
    Pending in = std::move(next);
    if (g + 1 < G) next = send_in(g + 1);
    at::Tensor got = in.wait();  // [u, n, hc, Ls, d]: block j = member j's tokens
    at::Tensor o = attend(got.permute({1, 2, 0, 3, 4}).reshape({n, hc, u * Ls, d}));  // [1, hc, u*Ls, d]
    // [1, hc, u*Ls, d] -> [u, 1, hc, Ls, d]: block j (tokens of member j) goes back to member j.
    back[g] = c.start_all_to_all(o.view({1, hc, u, Ls, d}).permute({2, 0, 1, 3, 4}).contiguous(), "ulysses output");
  }
  at::Tensor out = at::empty({1, u, G, hc, Ls, d}, qkv.options());
  for (int64_t g = 0; g < G; ++g)
    out.select(2, g).copy_(back[g].wait().transpose(0, 1));  // [u, 1, hc, Ls, d]: block i = member i's heads
  return out.view({1, H, Ls, d});
}

}  // namespace wan

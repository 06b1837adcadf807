#include "parallel/ulysses.h"

#include "common/error.h"

namespace wan {

at::Tensor ulysses_scatter_heads(Communicator& c, const at::Tensor& x, const char* what) {
  const int64_t u = c.size(), n = x.size(0), H = x.size(1), Ls = x.size(2), d = x.size(3);
  if (H % u != 0) fail("ulysses: ", H, " heads are not divisible by the Ulysses degree ", u, " (group ", c.name(), ")");
  // [n, H, Ls, d] -> [u, n, H/u, Ls, d]: block i (heads of member i) goes to member i.
  at::Tensor in = x.view({n, u, H / u, Ls, d}).transpose(0, 1).contiguous();
  at::Tensor out = c.all_to_all(in, what);  // [u, n, H/u, Ls, d]: block j = member j's tokens
  return out.permute({1, 2, 0, 3, 4}).reshape({n, H / u, u * Ls, d});
}

at::Tensor ulysses_gather_heads(Communicator& c, const at::Tensor& o, const char* what) {
  const int64_t u = c.size(), n = o.size(0), h = o.size(1), Ls = o.size(2) / u, d = o.size(3);
  // [n, h, u*Ls, d] -> [u, n, h, Ls, d]: block j (tokens of member j) goes back to member j.
  at::Tensor in = o.view({n, h, u, Ls, d}).permute({2, 0, 1, 3, 4}).contiguous();
  at::Tensor out = c.all_to_all(in, what);  // [u, n, h, Ls, d]: block i = heads of member i
  return out.transpose(0, 1).reshape({n, u * h, Ls, d});
}

}  // namespace wan

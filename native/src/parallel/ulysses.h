// Ulysses sequence parallelism (DeepSpeed-Ulysses, as xDiT's USP uses it): an all-to-all within a
// group of u ranks turns "my Ls tokens, all H heads" into "the group's u*Ls tokens, H/u heads",
// attention runs on whole sequences of fewer heads, and a second all-to-all turns it back.
#pragma once
#include <ATen/ATen.h>

#include "parallel/process_group.h"

namespace wan {

// x: [n, H, Ls, d] (n packed tensors, e.g. q, k, v) -> [n, H/u, u*Ls, d]: the group's tokens in
// member order, this member's H/u heads. H % u == 0 (else an error naming H and u).
at::Tensor ulysses_scatter_heads(Communicator& c, const at::Tensor& x, const char* what);
// o: [n, H/u, u*Ls, d] -> [n, H, Ls, d]: the inverse.
at::Tensor ulysses_gather_heads(Communicator& c, const at::Tensor& o, const char* what);

}  // namespace wan

// Ulysses sequence parallelism (DeepSpeed-Ulysses, as xDiT's USP uses it): an all-to-all within a
// group of u ranks turns "my Ls tokens, all H heads" into "the group's u*Ls tokens, H/u heads",
// attention runs on whole sequences of fewer heads, and a second all-to-all turns it back.
//
// Heads are independent, so the member's H/u heads go in `chunks` groups, pipelined: group g+1's
// q/k/v all-to-all travels while group g's attention runs, and group g's output travels back
// while the next group computes. Only the first group's inbound and the last one's outbound
// transfers are not hidden behind compute.
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "parallel/process_group.h"

namespace wan {

// Head groups per member the engine pipelines (fewer when the member's heads do not divide).
constexpr int kUlyssesChunks = 2;
// The head groups a member's `heads_per_member` (H/u) heads go in when `chunks` are asked for: the
// largest divisor of heads_per_member that is at most chunks (at least 1).
int64_t ulysses_head_groups(int64_t heads_per_member, int64_t chunks = kUlyssesChunks);

// qkv: [3, H, Ls, d] this member's tokens (q, k, v stacked). attend: [3, h, u*Ls, d] (a head
// group, the group's tokens in member order) -> [1, h, u*Ls, d]. -> [1, H, Ls, d].
// H % u == 0 (else an error naming H and u); `chunks` is lowered to the largest divisor of H/u.
at::Tensor ulysses_attention(Communicator& c, const at::Tensor& qkv, int chunks,
                             const std::function<at::Tensor(const at::Tensor& qkv)>& attend);

}  // namespace wan

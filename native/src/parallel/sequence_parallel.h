// The DiT's sequence-parallel shard for one rank of a device group: Ulysses all-to-all within
// the rank's Ulysses group, then ring passes within its ring group (either may be of size 1),
// one all-gather over the sequence-parallel group at the end. Every attention first checks that
// q, k, v are on the rank's device in the compute dtype.
#pragma once
#include "common/dit_shard.h"
#include "parallel/device_group.h"

namespace wan {

// `s` must outlive the shard. num_layers: to name the block in errors.
DitShard make_dit_shard(RankState& s, int64_t num_heads, int64_t num_layers, at::ScalarType dtype);

// Self-attention of one rank (what DitShard::attention runs). q, k, v: [1, H, Ls, d].
at::Tensor sequence_parallel_attention(RankState& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       int64_t tokens, at::ScalarType dtype);

}  // namespace wan

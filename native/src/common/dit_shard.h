// The seam between the DiT (models/dit.h), which calls it, and the device group
// (parallel/sequence_parallel.h), which implements it: a set of callbacks, so neither layer
// includes the other.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace wan {

// A rank's part of a sequence-parallel evaluation (parallel/sequence_parallel.h makes one). The
// patchified tokens, padded to a multiple of `size`, are split in `size` equal shards; this rank
// computes shard `rank` and meets the others only in `attention` and `gather`.
struct DitShard {
  int64_t rank = 0, size = 1;
  // Self-attention over the whole sequence. q, k, v: [1, H, Ls, d] this rank's tokens (RoPE
  // applied) -> [1, H, Ls, d]. Of the size * Ls tokens, only the first `tokens` are real: the
  // rest is padding and must be masked.
  std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t tokens)> attention;
  // x: [1, Ls, C] this rank's rows -> [1, size * Ls, C], every rank's rows in rank order.
  std::function<at::Tensor(const at::Tensor& x)> gather;
  // Weight sharding (DitOptions::weight_shards = size): starts the all-gather of one block's flat
  // weights, this rank's part [S]; the returned function waits for every rank's parts in rank
  // order [size, S]. Called once per block and dtype, one block ahead of the compute.
  using Waiter = std::function<at::Tensor()>;
  std::function<Waiter(const at::Tensor& part)> gather_weights;
};

}  // namespace wan

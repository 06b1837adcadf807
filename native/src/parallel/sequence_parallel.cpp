#include "parallel/sequence_parallel.h"

#include <memory>

#include "common/error.h"
#include "parallel/ring.h"
#include "parallel/ulysses.h"

namespace wan {

at::Tensor sequence_parallel_attention(RankState& s, const at::Tensor& q_in, const at::Tensor& k_in,
                                       const at::Tensor& v_in, int64_t tokens, at::ScalarType dtype) {
  at::Tensor q = q_in, k = k_in, v = v_in;
  if (s.attention_hook) s.attention_hook(s, q, k, v);
  check_tensor(s.ctx, q, "self-attention q", dtype);
  check_tensor(s.ctx, k, "self-attention k", dtype);
  check_tensor(s.ctx, v, "self-attention v", dtype);
  const int64_t Ls = q.size(2);
  const at::Tensor qkv = at::stack({q[0], k[0], v[0]});  // [3, H, Ls, d]
  auto attend = [&](const at::Tensor& x) {  // [3, h, u*Ls, d] -> [1, h, u*Ls, d]
    return ring_attention(s.ring.get(), x.narrow(0, 0, 1), x.narrow(0, 1, 2), tokens);
  };
  const at::Tensor o = s.ulysses ? ulysses_attention(*s.ulysses, qkv, kUlyssesChunks, attend) : attend(qkv);  // [1, H, Ls, d]
  if (o.size(2) != Ls) fail("rank ", s.ctx.rank, ": sequence-parallel attention returned ", o.size(2), " rows, not ", Ls);
  return o;
}

DitShard make_dit_shard(RankState& s, int64_t num_heads, int64_t num_layers, at::ScalarType dtype) {
  const int sp = s.layout.sequence_parallel();
  if (num_heads % s.layout.ulysses != 0)
    fail("ulysses degree ", s.layout.ulysses, " does not divide the DiT's ", num_heads, " heads");
  DitShard d;
  d.rank = s.sp_rank;
  d.size = sp;
  auto calls = std::make_shared<int64_t>(0);
  RankState* ps = &s;
  d.attention = [ps, calls, num_layers, dtype](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               int64_t tokens) {
    const int64_t block = (*calls)++ % num_layers;
    const std::string step = ps->ctx.where;
    ps->ctx.where = concat(step, ", block ", block);
    at::Tensor o = sequence_parallel_attention(*ps, q, k, v, tokens, dtype);
    ps->ctx.where = step;
    return o;
  };
  d.gather_weights = [ps](const at::Tensor& part) -> DitShard::Waiter {  // [S] -> [sp, S]
    auto pending = std::make_shared<Pending>(ps->sp->start_all_gather(part, "dit weights"));
    return [pending] { return pending->wait(); };
  };
  d.gather = [ps](const at::Tensor& x) {  // [1, Ls, C] -> [1, sp*Ls, C]
    at::Tensor g = ps->sp->all_gather(x[0], "dit output");  // [sp, Ls, C]
    return g.reshape({1, g.size(0) * g.size(1), g.size(2)});
  };
  return d;
}

}  // namespace wan

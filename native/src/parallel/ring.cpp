#include "parallel/ring.h"

#include "kernels/attention.h"

namespace wan {

at::Tensor ring_attention(Communicator* c, const at::Tensor& q, const at::Tensor& kv, int64_t tokens, bool overlap) {
  const int64_t R = c ? c->size() : 1, me = c ? c->rank() : 0, Lk = kv.size(2);
  if (R == 1) {
    const int64_t valid = std::min(tokens, Lk);
    return attention(q, kv[0].narrow(1, 0, valid).unsqueeze(0), kv[1].narrow(1, 0, valid).unsqueeze(0));
  }
  at::Tensor acc, lse;  // [1, h, Lq, d], [1, h, Lq] float32
  at::Tensor cur = kv;
  for (int64_t p = 0; p < R; ++p) {
    // The next pass's chunk travels while this one's attention runs (Gloo's threads on CPU ranks,
    // NCCL's stream on CUDA ranks); `held` is only read until the exchange is waited.
    const at::Tensor held = cur;  // this pass's keys and values
    Pending next;
    if (p + 1 < R) next = c->start_exchange(held, int((me + 1) % R), int((me - 1 + R) % R), "ring kv");
    if (!overlap && next.active()) cur = next.wait();  // the sequential schedule: transfer, then compute
    const int64_t chunk = ((me - p) % R + R) % R;  // whose chunk this rank holds at pass p
    const int64_t valid = std::max<int64_t>(0, std::min(Lk, tokens - chunk * Lk));
    if (valid > 0)
      merge_attention_part(acc, lse, attention_part(q, held[0].narrow(1, 0, valid).unsqueeze(0),  // [1, h, valid, d]
                                                    held[1].narrow(1, 0, valid).unsqueeze(0)));
    if (next.active()) cur = next.wait();
  }
  return acc.to(q.scalar_type());  // chunk 0 always holds real tokens: acc is defined
}

}  // namespace wan

// Ring attention: each of R members holds one chunk of the keys and values; R passes send the
// chunk to the next member and receive the previous one's, and every pass's partial softmax is
// merged online (running max m, sum l, output acc, all float32):
//   m' = max(m, max_j s_j);  l' = l e^(m - m') + sum_j e^(s_j - m');  acc' = acc e^(m - m') + sum_j e^(s_j - m') v_j
// and the result is acc / l: exactly softmax(q k^T / sqrt(d)) v over all chunks.
#pragma once
#include <ATen/ATen.h>

#include "parallel/process_group.h"

namespace wan {

// q: [1, h, Lq, d]; kv: [2, h, Lk, d] this member's chunk (c.rank()), holding global key tokens
// [chunk * Lk, (chunk + 1) * Lk); keys at or past `tokens` are padding and masked.
// c null = one chunk. -> [1, h, Lq, d] in q's dtype.
// overlap: each pass's exchange is started before its attention and waited after it (the
// engine's way); false waits it before (what `wanlab-engine bench overlap` compares against).
at::Tensor ring_attention(Communicator* c, const at::Tensor& q, const at::Tensor& kv, int64_t tokens,
                          bool overlap = true);

}  // namespace wan

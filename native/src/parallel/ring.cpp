#include "parallel/ring.h"

#include <cmath>
#include <limits>

#include "models/attention.h"

namespace wan {

at::Tensor ring_attention(Communicator* c, const at::Tensor& q, const at::Tensor& kv, int64_t tokens) {
  const int64_t R = c ? c->size() : 1, me = c ? c->rank() : 0, Lk = kv.size(2);
  if (R == 1) {
    const int64_t valid = std::min(tokens, Lk);
    return attention(q, kv[0].narrow(1, 0, valid).unsqueeze(0), kv[1].narrow(1, 0, valid).unsqueeze(0));
  }
  const double scale = 1.0 / std::sqrt(double(q.size(3)));
  at::Tensor qf = q.to(at::kFloat);
  at::Tensor m = at::full({1, q.size(1), q.size(2), 1}, -std::numeric_limits<float>::infinity(), qf.options());
  at::Tensor l = at::zeros_like(m), acc = at::zeros_like(qf);
  at::Tensor cur = kv;
  for (int64_t p = 0; p < R; ++p) {
    const int64_t chunk = ((me - p) % R + R) % R;  // whose chunk this rank holds at pass p
    const int64_t valid = std::max<int64_t>(0, std::min(Lk, tokens - chunk * Lk));
    if (valid > 0) {
      at::Tensor k = cur[0].narrow(1, 0, valid).unsqueeze(0).to(at::kFloat);  // [1, h, valid, d]
      at::Tensor v = cur[1].narrow(1, 0, valid).unsqueeze(0).to(at::kFloat);
      at::Tensor s = at::matmul(qf, k.transpose(-2, -1)).mul_(scale);         // [1, h, Lq, valid]
      at::Tensor m_new = at::maximum(m, std::get<0>(s.max(-1, true)));
      at::Tensor corr = at::exp(m - m_new);
      at::Tensor e = at::exp(s - m_new);
      l = l * corr + e.sum(-1, true);
      acc = acc * corr + at::matmul(e, v);
      m = m_new;
    }
    if (p + 1 < R) cur = c->exchange(cur, int((me + 1) % R), int((me - 1 + R) % R), "ring kv");
  }
  return (acc / l).to(q.scalar_type());
}

}  // namespace wan

#include "tools/random_prompt.h"

#include <algorithm>

namespace wan {

namespace {
void fill(const ModelArch& a, int64_t n, at::Generator& g, at::Tensor& ids, at::Tensor& mask) {
  const int64_t L = a.dit.text_len;
  n = std::min(n, L);
  ids = at::zeros({L}, at::kLong), mask = at::zeros({L}, at::kLong);
  ids.narrow(0, 0, n).copy_(at::randint(3, a.t5.vocab, {n}, g, at::kLong));
  ids[n - 1] = 1;
  mask.narrow(0, 0, n).fill_(1);
}
}  // namespace

T2VRequest random_prompts(const ModelArch& a, int64_t prompt_tokens, int64_t negative_tokens, at::Generator& g) {
  T2VRequest r;
  fill(a, prompt_tokens, g, r.prompt_ids, r.prompt_mask);
  fill(a, negative_tokens, g, r.negative_ids, r.negative_mask);
  return r;
}

}  // namespace wan

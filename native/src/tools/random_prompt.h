// Random token prompts for benchmarks and parity runs, shaped as the tokenizer hands them over.
#pragma once
#include <ATen/ATen.h>

#include "checkpoint/arch.h"
#include "pipeline/t2v.h"

namespace wan {

// A request whose prompt and negative prompt are `prompt_tokens` / `negative_tokens` random ids
// in [3, vocab) (0-2 are special), `</s>` (1) last, zero-padded to text_len with the mask to match.
// Every other field keeps T2VRequest's defaults. Token counts are capped at text_len.
T2VRequest random_prompts(const ModelArch& a, int64_t prompt_tokens, int64_t negative_tokens, at::Generator& g);

}  // namespace wan

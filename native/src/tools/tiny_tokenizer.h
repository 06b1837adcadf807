// A small SentencePiece-Unigram tokenizer in the Hugging Face tokenizer.json format of
// google/umt5-xxl (same specials and ids: <pad>=0, </s>=1, <unk>=2, sentinel <extra_id_N>
// tokens after the pieces in reverse order, </s> appended by the post-processor), for tiny models.
#pragma once
#include <string>

namespace wan {

struct TokenizerFiles {
  int64_t vocab_size = 0;  // pieces + sentinels (must not exceed the T5 embedding rows)
};

// Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir`.
TokenizerFiles write_tiny_tokenizer(const std::string& dir);

}  // namespace wan

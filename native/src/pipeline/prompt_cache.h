// Prompt embeddings by token ids. A sweep over seeds, CFG scales, step counts or sizes keeps its
// prompt and negative prompt, and the text encoder gives the same embedding for the same ids
// (umt5-xxl: 5.7 B parameters, seconds per prompt on a CPU), so each is encoded once per engine.
// Least recently used entries go first once the embeddings held exceed the capacity.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wan {

class PromptCache {
 public:
  explicit PromptCache(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}
  // A copy of the embedding encoded from exactly these ids and mask, or an undefined tensor.
  at::Tensor find(const at::Tensor& ids, const at::Tensor& mask);
  // embedding: [text_len, dim] on the CPU, kept as given (the caller must not modify it).
  void put(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& embedding);
  struct Stats {
    int64_t entries = 0, bytes = 0, capacity_bytes = 0, hits = 0, misses = 0;
  };
  Stats stats() const;

 private:
  using Entry = std::pair<std::string, at::Tensor>;  // key: the ids' and mask's bytes
  static std::string key(const at::Tensor& ids, const at::Tensor& mask);
  const int64_t capacity_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  int64_t bytes_ = 0, hits_ = 0, misses_ = 0;
};

}  // namespace wan

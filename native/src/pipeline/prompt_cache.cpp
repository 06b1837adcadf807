#include "pipeline/prompt_cache.h"

namespace wan {

std::string PromptCache::key(const at::Tensor& ids, const at::Tensor& mask) {
  const at::Tensor i = ids.to(at::kCPU, at::kLong).contiguous(), m = mask.to(at::kCPU, at::kLong).contiguous();
  std::string k(reinterpret_cast<const char*>(i.data_ptr()), size_t(i.numel()) * sizeof(int64_t));
  k.append(reinterpret_cast<const char*>(m.data_ptr()), size_t(m.numel()) * sizeof(int64_t));
  return k;
}

at::Tensor PromptCache::find(const at::Tensor& ids, const at::Tensor& mask) {
  if (capacity_bytes_ <= 0) return {};
  const std::string k = key(ids, mask);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(k);
  if (it == index_.end()) {
    ++misses_;
    return {};
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second.clone();  // the caller's to change
}

void PromptCache::put(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& embedding) {
  const int64_t size = int64_t(embedding.nbytes());
  if (size > capacity_bytes_) return;
  std::string k = key(ids, mask);
  std::lock_guard<std::mutex> lock(mu_);
  if (index_.count(k)) return;  // another caller encoded it meanwhile
  lru_.emplace_front(k, embedding);
  index_.emplace(std::move(k), lru_.begin());
  bytes_ += size;
  while (bytes_ > capacity_bytes_) {
    bytes_ -= int64_t(lru_.back().second.nbytes());
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

PromptCache::Stats PromptCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {int64_t(lru_.size()), bytes_, capacity_bytes_, hits_, misses_};
}

}  // namespace wan

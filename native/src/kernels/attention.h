// Multi-head scaled dot-product attention: the one place the DiT computes softmax(q k^T / sqrt(d)) v.
// Every attention in the model (self and cross) goes through attention(), so a later flash or
// sequence-parallel variant replaces this file and nothing else.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

namespace wan {

// q: [B, H, Lq, d], k/v: [B, H, Lk, d] -> [B, H, Lq, d] in q's dtype. Scale 1/sqrt(d), no mask.
// libtorch >= 2.0: at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).
// libtorch 1.13: attention_chunked below, with chunks sized to bound the score memory (and on the
// CPU their time, for the check between chunks: AttentionCheckScope).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Attention over one part of the keys, with each query row's log-sum-exp of its scaled scores,
// so parts computed apart merge exactly (ring attention's online softmax, parallel/ring.h):
//   out = softmax(s) v over the part, lse = log sum_j exp(s_j), s = q k^T / sqrt(d).
struct AttentionPart {
  at::Tensor out;  // [B, H, Lq, d] in q's dtype
  at::Tensor lse;  // [B, H, Lq] float32
};
// CUDA bf16/f16 on libtorch >= 2.2: the flash kernel, which returns the log-sum-exp itself.
// Elsewhere: attention_chunked's float32 path, query chunks bounding the score memory.
AttentionPart attention_part(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
// Folds one part into a running result, acc [B, H, Lq, d] and lse [B, H, Lq] float32 (both
// undefined before the first part):
//   lse' = log(e^lse + e^lse_p);  acc' = acc e^(lse - lse') + out_p e^(lse_p - lse')
void merge_attention_part(at::Tensor& acc, at::Tensor& lse, const AttentionPart& part);

// Which fused kernel SDPA may pick on CUDA (process-wide, PyTorch's own switches):
//   "auto" (PyTorch's priority order), "flash", "cudnn", "efficient" (memory-efficient) or "math".
// A named backend is enabled alone with math as the fallback for shapes it cannot take.
// libtorch 1.13 has one path: only "auto" and "math" are accepted there.
void set_attention_backend(const std::string& name);

// A check that the chunked path runs between its query chunks, so a cancel is seen within one
// chunk of a long attention (the tiny model's self-attention over a 480x832x81 video takes tens
// of seconds on a CPU; the fused kernels of libtorch 2.x run whole). Thread-local: the DiT installs
// the engine's check for the duration of a forward (AttentionCheckScope); none by default. The
// check may throw to stop the attention.
class AttentionCheckScope {
 public:
  explicit AttentionCheckScope(const std::function<void()>* check);
  ~AttentionCheckScope();
  AttentionCheckScope(const AttentionCheckScope&) = delete;
  AttentionCheckScope& operator=(const AttentionCheckScope&) = delete;

 private:
  const std::function<void()>* previous_;
};

// Runs the check installed on this thread, if any: between the query chunks of the chunked path,
// and wherever a caller has a long computation to cut (the DiT between its sublayers).
void run_check_point();

namespace detail {
// The libtorch 1.13 path, compiled on every version so tests can run it: queries in chunks of
// `chunk_rows` (all of them if <= 0), scores and softmax in float32 (as PyTorch's math SDPA and
// the golden reference's shim do), the result cast back to q's dtype. lse non-null: also each
// row's log-sum-exp of its scaled scores, [B, H, Lq] float32.
at::Tensor attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t chunk_rows,
                             at::Tensor* lse = nullptr);
// Query rows per chunk so one chunk's float32 scores [B, H, rows, Lk] stay under `budget_bytes`.
int64_t attention_chunk_rows(const at::Tensor& q, const at::Tensor& k, int64_t budget_bytes);
}  // namespace detail

}  // namespace wan

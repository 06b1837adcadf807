#include "kernels/attention.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/shape_str.h"

namespace wan {

namespace {

// One chunk's float32 score matrix is kept under this (the full [Lq, Lk] matrix of a 720p 14B
// step would be tens of GiB).
constexpr int64_t kScoreBudgetBytes = int64_t(512) << 20;

void check_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (q.dim() != 4) fail("attention: q must be [B, H, Lq, d], got ", shape_str(q.sizes()));
  if (k.dim() != 4) fail("attention: k must be [B, H, Lk, d], got ", shape_str(k.sizes()));
  if (k.sizes() != v.sizes())
    fail("attention: k ", shape_str(k.sizes()), " and v ", shape_str(v.sizes()), " differ in shape");
  if (k.size(0) != q.size(0) || k.size(1) != q.size(1) || k.size(3) != q.size(3))
    fail("attention: k ", shape_str(k.sizes()), " does not match q ", shape_str(q.sizes()),
         " in batch, heads or head dim");
  if (q.scalar_type() != k.scalar_type() || q.scalar_type() != v.scalar_type())
    fail("attention: q, k, v must share a dtype (got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
         v.scalar_type(), ")");
}

thread_local const std::function<void()>* t_check = nullptr;

// On the CPU, query chunks of about this many FLOPs (q k^T and p v: 4 B H rows Lk d), so the
// check between chunks comes every few tens of milliseconds on a server CPU and within half a
// second on two busy cores (a 2048-row chunk of the tiny model at 480x832x81 took 13 s there).
// Not fewer than 64 rows, which keep the matrix products efficient.
constexpr int64_t kCpuChunkFlops = int64_t(1) << 31;

int64_t chunk_rows_for(const at::Tensor& q, const at::Tensor& k) {
  int64_t rows = detail::attention_chunk_rows(q, k, kScoreBudgetBytes);
  if (q.is_cpu()) {
    const int64_t per_row = std::max<int64_t>(1, 4 * q.size(0) * q.size(1) * k.size(2) * q.size(3));
    rows = std::min(rows, std::max<int64_t>(64, kCpuChunkFlops / per_row));
  }
  return rows;
}

}  // namespace

AttentionCheckScope::AttentionCheckScope(const std::function<void()>* check) : previous_(t_check) { t_check = check; }
AttentionCheckScope::~AttentionCheckScope() { t_check = previous_; }
void run_check_point() {
  if (t_check && *t_check) (*t_check)();
}

namespace detail {

int64_t attention_chunk_rows(const at::Tensor& q, const at::Tensor& k, int64_t budget_bytes) {
  const int64_t row_bytes = std::max<int64_t>(1, q.size(0) * q.size(1) * k.size(2)) * int64_t(sizeof(float));
  return std::max<int64_t>(1, budget_bytes / row_bytes);
}

at::Tensor attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t chunk_rows,
                             at::Tensor* lse) {
  check_shapes(q, k, v);
  const int64_t Lq = q.size(2);
  if (chunk_rows <= 0 || chunk_rows > Lq) chunk_rows = std::max<int64_t>(Lq, 1);
  const double scale = 1.0 / std::sqrt(double(q.size(3)));
  // Keys and values are upcast once, not per chunk.
  at::Tensor kt = k.to(at::kFloat).transpose(-2, -1);  // [B, H, d, Lk]
  at::Tensor vf = v.to(at::kFloat);                    // [B, H, Lk, d]
  at::Tensor out = at::empty(q.sizes(), q.options());  // [B, H, Lq, d]
  if (lse) *lse = at::empty({q.size(0), q.size(1), Lq}, q.options().dtype(at::kFloat));  // [B, H, Lq]
  for (int64_t r = 0; r < Lq; r += chunk_rows) {
    if (r > 0) run_check_point();  // the engine's cancel point (AttentionCheckScope)
    const int64_t n = std::min(chunk_rows, Lq - r);
    at::Tensor qc = q.narrow(2, r, n).to(at::kFloat);      // [B, H, n, d]
    at::Tensor s = at::matmul(qc, kt).mul_(scale);         // [B, H, n, Lk]; (q k^T) * scale, as SDPA's math path
    if (lse) lse->narrow(2, r, n).copy_(at::logsumexp(s, -1));
    at::Tensor p = at::softmax(s, -1);
    out.narrow(2, r, n).copy_(at::matmul(p, vf));          // [B, H, n, d]
  }
  return out;
}

}  // namespace detail

AttentionPart attention_part(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  check_shapes(q, k, v);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  // Flash's own limits: half types, head dim a multiple of 8 up to 256 (Wan's is 128).
  const bool half = q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf;
  if (q.is_cuda() && half && q.size(3) % 8 == 0 && q.size(3) <= 256) {
    auto r = at::_scaled_dot_product_flash_attention(q, k, v);
    // out [B, H, Lq, d]; logsumexp [B, H, Lq] float32 (narrowed: some kernels pad the rows).
    return {std::get<0>(r), std::get<1>(r).narrow(2, 0, q.size(2))};
  }
#endif
  AttentionPart p;
  p.out = detail::attention_chunked(q, k, v, chunk_rows_for(q, k), &p.lse);
  return p;
}

void merge_attention_part(at::Tensor& acc, at::Tensor& lse, const AttentionPart& part) {
  if (!acc.defined()) {
    acc = part.out.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);  // owned: merged into in place
    lse = part.lse;
    return;
  }
  const at::Tensor merged = at::logaddexp(lse, part.lse);  // [B, H, Lq]
  // Two passes over acc, in place, reading the part in its own dtype: no float32 copy of it and no
  // temporaries of acc's size (ATen's out-of-place form made five such passes).
  acc.mul_((lse - merged).exp_().unsqueeze(-1));
  acc.addcmul_(part.out, (part.lse - merged).exp_().unsqueeze(-1));
  lse = merged;
}

void set_attention_backend(const std::string& name) {
  if (name != "auto" && name != "flash" && name != "cudnn" && name != "efficient" && name != "math")
    fail("attention backend '", name, "' is not one of: auto, flash, cudnn, efficient, math");
#if TORCH_VERSION_MAJOR >= 2
  auto& ctx = at::globalContext();
  const bool all = name == "auto";
  ctx.setSDPUseFlash(all || name == "flash");
  ctx.setSDPUseMemEfficient(all || name == "efficient");
  ctx.setSDPUseMath(true);
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 3
  ctx.setSDPUseCuDNN(all || name == "cudnn");
#else
  if (name == "cudnn") fail("attention backend 'cudnn' needs libtorch >= 2.3");
#endif
#else
  if (name != "auto" && name != "math") fail("attention backend '", name, "' needs libtorch >= 2.0 (this is 1.13)");
#endif
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  check_shapes(q, k, v);
  return at::scaled_dot_product_attention(q, k, v);
#else
  check_shapes(q, k, v);  // before chunk_rows_for reads them
  return detail::attention_chunked(q, k, v, chunk_rows_for(q, k));
#endif
}

}  // namespace wan

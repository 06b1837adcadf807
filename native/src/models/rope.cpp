#include "models/rope.h"

#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/rope.h"

namespace wan {

at::Tensor rope_angles_1d(int64_t dim, int64_t positions, double theta) {
  if (dim <= 0 || dim % 2 != 0) fail("rope: axis dim must be positive and even, got ", dim);
  if (positions < 0) fail("rope: negative position count ", positions);
  // DiffSynth: 1.0 / (theta ** (arange(0, dim, 2)[:dim/2].double() / dim)), then
  // outer(arange(end), freqs). Same ATen ops in float64 -> same values.
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor exponent = at::arange(0, dim, 2, f64).div(double(dim));  // [dim/2]
  at::Tensor freqs = at::reciprocal(at::pow(theta, exponent));         // [dim/2]
  return at::outer(at::arange(positions, f64), freqs);                  // [positions, dim/2]
}

RopeTable rope_table(int64_t head_dim, int64_t f, int64_t h, int64_t w, double theta) {
  if (head_dim <= 0 || head_dim % 2 != 0) fail("rope: head_dim must be positive and even, got ", head_dim);
  if (f <= 0 || h <= 0 || w <= 0) fail("rope: grid (", f, ", ", h, ", ", w, ") must be positive");
  const int64_t dh = head_dim / 3, df = head_dim - 2 * dh;  // frame takes the remainder
  if (df % 2 != 0 || dh % 2 != 0)
    fail("rope: head_dim ", head_dim, " splits into odd axis dims (", df, ", ", dh, ", ", dh, ")");
  const int64_t pf = df / 2, ph = dh / 2, pw = dh / 2, P = head_dim / 2;
  at::Tensor af = rope_angles_1d(df, f, theta);  // [f, pf]
  at::Tensor ah = rope_angles_1d(dh, h, theta);  // [h, ph]
  at::Tensor aw = rope_angles_1d(dh, w, theta);  // [w, pw]
  const double* pa[3] = {af.data_ptr<double>(), ah.data_ptr<double>(), aw.data_ptr<double>()};

  const int64_t L = f * h * w;
  at::Tensor c = at::empty({L, P}, at::kDouble), s = at::empty({L, P}, at::kDouble);
  double* pc = c.data_ptr<double>();
  double* ps = s.data_ptr<double>();
  // std::cos/std::sin per element: torch.polar's CPU kernel, so the table matches bit for bit
  // (ATen's vectorized cos may differ in the last ulp).
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t k = 0; k < w; ++k) {
        const int64_t row = (i * h + j) * w + k;
        double* rc = pc + row * P;
        double* rs = ps + row * P;
        const double* src[3] = {pa[0] + i * pf, pa[1] + j * ph, pa[2] + k * pw};
        const int64_t n[3] = {pf, ph, pw};
        int64_t col = 0;
        for (int a = 0; a < 3; ++a)
          for (int64_t q = 0; q < n[a]; ++q, ++col) {
            rc[col] = std::cos(src[a][q]);
            rs[col] = std::sin(src[a][q]);
          }
      }
  return {c, s, {}};
}

RopeTable rope_slice(const RopeTable& t, int64_t begin, int64_t end) {
  if (begin < 0 || end < begin || end > t.size())
    fail("rope: slice [", begin, ", ", end, ") is outside the table's ", t.size(), " tokens");
  return {t.cos.slice(0, begin, end), t.sin.slice(0, begin, end),
          t.freqs.defined() ? t.freqs.slice(0, begin, end) : at::Tensor()};
}

RopeTable rope_complex(const RopeTable& t, const at::Device& device) {
  at::Tensor c = t.cos.to(device, at::kFloat), s = t.sin.to(device, at::kFloat);
  return {c, s, at::complex(c, s)};
}

at::Tensor rope_apply_complex(const at::Tensor& x, const RopeTable& t) {
  const int64_t L = x.size(1), d = x.size(3);
  if (!t.freqs.defined()) fail("rope: the table has no complex64 freqs (rope_complex makes them)");
  // (a + ib)(c + is) as one complex64 multiply.
  at::Tensor xc = at::view_as_complex(x.to(at::kFloat).reshape({x.size(0), L, x.size(2), d / 2, 2}));
  at::Tensor y = xc * t.freqs.view({1, L, 1, d / 2});  // [B, L, H, d/2] complex64
  return at::view_as_real(y).flatten(3).to(x.scalar_type());
}

at::Tensor rope_apply(const at::Tensor& x, const RopeTable& t) {
  if (x.dim() != 4) fail("rope: x must be [B, L, H, d], got ", x.dim(), " dims");
  const int64_t L = x.size(1), d = x.size(3);
  if (L != t.size()) fail("rope: x has ", L, " tokens but the table has ", t.size());
  if (d != 2 * t.cos.size(1)) fail("rope: x has head dim ", d, " but the table is for ", 2 * t.cos.size(1));
  if (t.freqs.defined()) {
    const at::Tensor y = x.is_cuda() ? kernels::try_rope_bf16(x, t.cos, t.sin) : at::Tensor();
    return y.defined() ? y : rope_apply_complex(x, t);
  }
  const auto dt = t.cos.scalar_type();
  at::Tensor xp = x.to(dt).reshape({x.size(0), L, x.size(2), d / 2, 2});  // [B, L, H, d/2, 2]
  at::Tensor a = xp.select(-1, 0), b = xp.select(-1, 1);                   // real, imaginary
  at::Tensor c = t.cos.to(x.device()).view({1, L, 1, d / 2});
  at::Tensor s = t.sin.to(x.device()).view({1, L, 1, d / 2});
  at::Tensor re = a * c - b * s;
  at::Tensor im = a * s + b * c;
  return at::stack({re, im}, -1).flatten(3).to(x.scalar_type());  // [B, L, H, d]
}

}  // namespace wan

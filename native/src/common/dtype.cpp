#include "common/dtype.h"

#include <torch/version.h>

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace wan {

namespace {
struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
  at::ScalarType storage;
};
const DTypeInfo kDTypes[] = {
    {DType::BF16, "BF16", 2, at::kBFloat16}, {DType::F16, "F16", 2, at::kHalf},
    {DType::F32, "F32", 4, at::kFloat},      {DType::F64, "F64", 8, at::kDouble},
    {DType::F8_E4M3, "F8_E4M3", 1, at::kByte}, {DType::F8_E5M2, "F8_E5M2", 1, at::kByte},
    {DType::I64, "I64", 8, at::kLong},       {DType::I32, "I32", 4, at::kInt},
    {DType::I16, "I16", 2, at::kShort},      {DType::I8, "I8", 1, at::kChar},
    {DType::U8, "U8", 1, at::kByte},         {DType::BOOL, "BOOL", 1, at::kBool},
};
const DTypeInfo& info(DType t) {
  for (const auto& i : kDTypes)
    if (i.dtype == t) return i;
  fail("internal: unknown dtype");
}

// float8 decoding tables (OCP FP8: e4m3fn has no infinities and one NaN pattern; e5m2 is IEEE-like).
float decode_f8(uint8_t v, int exp_bits, int bias, bool fn) {
  int man_bits = 7 - exp_bits;
  int sign = v >> 7;
  int exp = (v >> man_bits) & ((1 << exp_bits) - 1);
  int man = v & ((1 << man_bits) - 1);
  float s = sign ? -1.0f : 1.0f;
  if (fn) {
    if (exp == (1 << exp_bits) - 1 && man == (1 << man_bits) - 1) return NAN;
  } else if (exp == (1 << exp_bits) - 1) {
    return man == 0 ? s * INFINITY : NAN;
  }
  if (exp == 0) return s * std::ldexp(static_cast<float>(man), 1 - bias - man_bits);
  return s * std::ldexp(1.0f + static_cast<float>(man) / (1 << man_bits), exp - bias);
}
at::Tensor f8_table(DType t) {
  std::vector<float> lut(256);
  for (int i = 0; i < 256; ++i)
    lut[i] = t == DType::F8_E4M3 ? decode_f8(uint8_t(i), 4, 7, true) : decode_f8(uint8_t(i), 5, 15, false);
  return at::from_blob(lut.data(), {256}, at::kFloat).clone();
}
}  // namespace

const char* dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }
at::ScalarType storage_type(DType t) { return info(t).storage; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kDTypes)
    if (name == i.name) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_scalar_type(at::ScalarType t) {
  for (const auto& i : kDTypes)
    if (i.storage == t && i.dtype != DType::F8_E4M3 && i.dtype != DType::F8_E5M2) return i.dtype;
  return std::nullopt;
}

bool is_f8(DType t) { return t == DType::F8_E4M3 || t == DType::F8_E5M2; }

namespace {
// The table path: any libtorch, the table moved to the bytes' device (256 floats).
at::Tensor f8_by_table(const at::Tensor& bytes, DType t) {
  static const at::Tensor e4m3 = f8_table(DType::F8_E4M3), e5m2 = f8_table(DType::F8_E5M2);
  const at::Tensor& lut = t == DType::F8_E4M3 ? e4m3 : e5m2;
  return lut.to(bytes.device()).index_select(0, bytes.reshape({-1}).to(at::kInt)).reshape(bytes.sizes());
}
}  // namespace

at::Tensor to_float32(const StoredTensor& t) {
  if (!is_f8(t.dtype)) return t.data.to(at::kFloat);
  at::Tensor v = f8_by_table(t.data, t.dtype);
  return t.scale == 1.0f ? v : v.mul_(t.scale);
}

at::Tensor decode_f8(const at::Tensor& bytes, DType t, at::ScalarType out) {
  if (!is_f8(t)) fail("decode_f8: ", dtype_name(t), " is not a float8 type");
  if (bytes.scalar_type() != at::kByte) fail("decode_f8: float8 elements must be in uint8 storage, got ", bytes.scalar_type());
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  return bytes.view(t == DType::F8_E4M3 ? at::kFloat8_e4m3fn : at::kFloat8_e5m2).to(out);
#else
  return f8_by_table(bytes, t).to(out);
#endif
}

at::Tensor encode_f8(const at::Tensor& x, DType t) {
  if (!is_f8(t)) fail("encode_f8: ", dtype_name(t), " is not a float8 type");
  // The non-negative finite codes 0 .. top decode to increasing values: search them for |x|.
  const int64_t top = t == DType::F8_E4M3 ? 0x7E : 0x7B;
  const at::Tensor values = f8_table(t).narrow(0, 0, top + 1).to(x.device());
  const at::Tensor a = x.to(at::kFloat).abs().reshape({-1});
  const float max_finite = values[top].item<float>();
  if (a.numel() > 0) {
    if (at::isnan(a).any().item<bool>()) fail("encode_f8: the tensor holds NaN");
    const float amax = a.max().item<float>();
    if (amax > max_finite)
      fail("encode_f8: |x| reaches ", amax, ", beyond ", dtype_name(t), "'s largest finite value ", max_finite,
           ": scale it first");
  }
  const at::Tensor hi = at::searchsorted(values, a).clamp_max(top);  // first value >= |x|
  const at::Tensor lo = (hi - 1).clamp_min(0);
  const at::Tensor d_hi = values.index_select(0, hi) - a, d_lo = a - values.index_select(0, lo);
  const at::Tensor tie_lo = d_lo.eq(d_hi).logical_and(lo.remainder(2).eq(0));
  const at::Tensor code = at::where(d_lo.lt(d_hi).logical_or(tie_lo), lo, hi);
  const at::Tensor sign = at::signbit(x.to(at::kFloat).reshape({-1})).to(at::kLong) * 128;
  return (code + sign).to(at::kByte).reshape(x.sizes());
}

StoredTensor stored(const at::Tensor& t) {
  auto d = dtype_from_scalar_type(t.scalar_type());
  if (!d) fail("unsupported tensor dtype ", t.scalar_type());
  return {t, *d};
}

}  // namespace wan

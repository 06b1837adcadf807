// Checkpoint dtypes as files name them, and the tensor type every loader returns.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace wan {

enum class DType { BF16, F16, F32, F64, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType t);                            // safetensors spelling: "BF16", "F8_E4M3", ...
std::optional<DType> dtype_from_name(std::string_view name);  // inverse of dtype_name
size_t dtype_size(DType t);                                   // bytes per element
// The ATen type that holds the raw elements. float8 lives in uint8 storage: libtorch 1.13
// has no float8 types, and one path for both versions keeps loading identical.
at::ScalarType storage_type(DType t);
std::optional<DType> dtype_from_scalar_type(at::ScalarType t);

// A tensor as a checkpoint stores it: `data` may alias a mapped file (read-only!).
struct StoredTensor {
  at::Tensor data;
  DType dtype;
  // float8 only: each value is its decoded byte times `scale` (ComfyUI's scaled fp8 keeps one
  // float32 `scale_weight` per weight; checkpoint/layout.cpp attaches it here).
  float scale = 1.0f;
};

// Name -> tensor, sorted by name so every listing and comparison is deterministic.
using TensorMap = std::map<std::string, StoredTensor>;

// Converts any floating dtype to float32 (float8: decoded, times its scale); integer types are cast.
at::Tensor to_float32(const StoredTensor& t);
bool is_f8(DType t);
// float8 elements (uint8 storage, any device) as `out` on the same device: ATen's float8 cast on
// libtorch >= 2.1 (one elementwise pass), else the decoding table. Exact in bf16, f16 and f32,
// which hold every e4m3 and e5m2 value.
at::Tensor decode_f8(const at::Tensor& bytes, DType t, at::ScalarType out);
// The other way, for float8 checkpoints and benchmarks: a float tensor rounded to the nearest
// value of `t` (ties to the even code, as ATen's cast), as uint8 storage on the same device. Any
// libtorch: the search runs over the decoding table. Values beyond the largest finite one (448
// for e4m3, 57344 for e5m2) and NaNs are errors: scale first.
at::Tensor encode_f8(const at::Tensor& x, DType t);
// Wraps an ATen tensor of a supported scalar type.
StoredTensor stored(const at::Tensor& t);

}  // namespace wan

#include "common/dtype.h"
#include "common/error.h"
#include "test.h"

using namespace wan;

TEST(dtype_names_round_trip) {
  for (DType t : {DType::BF16, DType::F16, DType::F32, DType::F64, DType::F8_E4M3, DType::F8_E5M2, DType::I64,
                  DType::I32, DType::I16, DType::I8, DType::U8, DType::BOOL}) {
    auto back = dtype_from_name(dtype_name(t));
    EXPECT(back && *back == t);
  }
  EXPECT(!dtype_from_name("F4"));
}

TEST(f8_decoding_matches_ocp_values) {
  // e4m3fn: 0x38 = 1.0, 0x7e = 448 (max), 0x01 = 2^-9 (smallest subnormal), 0xb8 = -1.0, 0x7f = NaN
  at::Tensor raw = at::tensor({0x38, 0x7e, 0x01, 0xb8, 0x7f}, at::kByte);
  at::Tensor f = to_float32({raw, DType::F8_E4M3});
  EXPECT(f[0].item<float>() == 1.0f);
  EXPECT(f[1].item<float>() == 448.0f);
  EXPECT(f[2].item<float>() == 0.001953125f);
  EXPECT(f[3].item<float>() == -1.0f);
  EXPECT(std::isnan(f[4].item<float>()));
  // e5m2: 0x3c = 1.0, 0x7b = 57344 (max), 0x7c = inf
  at::Tensor raw2 = at::tensor({0x3c, 0x7b, 0x7c}, at::kByte);
  at::Tensor g = to_float32({raw2, DType::F8_E5M2});
  EXPECT(g[0].item<float>() == 1.0f);
  EXPECT(g[1].item<float>() == 57344.0f);
  EXPECT(std::isinf(g[2].item<float>()));
}

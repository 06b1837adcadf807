// Own CUDA kernels (kernels/): the RoPE kernel's code, run on the CPU through its host emulation,
// against ATen's bf16 path; its NVRTC translation unit through nvcc where one is installed (CI
// has nvcc but no GPU); and on a CUDA device, the kernel itself against ATen and the emulation.
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "common/cuda.h"
#include "kernels/rope.h"
#include "models/rope.h"
#include "test.h"

using namespace wan;

namespace {
// x bf16 [2, L, 3, 128] and the table of a 2 x 3 x 4 grid (L = 24 tokens), float32 complex path.
struct RopeCase {
  at::Tensor x;
  RopeTable table;
};
RopeCase rope_case(const at::Device& d) {
  at::Generator g = seeded_generator(at::kCPU, 3);
  RopeCase c;
  c.x = (at::randn({2, 24, 3, 128}, g) * 3).to(at::kBFloat16).to(d);
  c.table = rope_complex(rope_table(128, 2, 3, 4), d);
  return c;
}
}  // namespace

TEST(rope_kernel_code_on_the_host_equals_atens_bf16_path) {
  const RopeCase c = rope_case(at::kCPU);
  const at::Tensor want = rope_apply_complex(c.x, c.table).to(at::kFloat);
  const at::Tensor got = kernels::rope_bf16_host(c.x, c.table.cos, c.table.sin).to(at::kFloat);
  // Both round the same float32 products to bf16; a fused multiply-add in ATen's complex multiply
  // may move a product by one float32 ulp and so, rarely, the bf16 result by one bf16 ulp.
  const at::Tensor diff = (got - want).abs();
  const int64_t differing = diff.gt(0).sum().item<int64_t>();
  const double ulp = (diff / want.abs().clamp_min(1e-30)).max().item<double>();
  std::printf("     %lld of %lld values differ from ATen, by at most %.2e relative\n", (long long)differing,
              (long long)diff.numel(), differing ? ulp : 0.0);
  EXPECT(differing * 1000 <= diff.numel());
  EXPECT(!differing || ulp <= 1.0 / 128);
  EXPECT(wantest::rel_l2(got, want) < 1e-3);
  // NaN stays NaN, infinities and signed zero pass through the rounding.
  at::Tensor special = at::zeros({1, 1, 1, 8}, at::kFloat);
  special[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
  special[0][0][0][2] = std::numeric_limits<float>::infinity();
  special[0][0][0][4] = -0.f;
  const at::Tensor one = kernels::rope_bf16_host(special.to(at::kBFloat16), at::ones({1, 4}), at::zeros({1, 4})).to(at::kFloat);
  EXPECT(std::isnan(one[0][0][0][0].item<float>()) && std::isinf(one[0][0][0][2].item<float>()));
  EXPECT(std::signbit(one[0][0][0][4].item<float>()));
  EXPECT_ERROR(kernels::rope_bf16_host(c.x.to(at::kFloat), c.table.cos, c.table.sin), "x must be bf16 on the CPU");
  EXPECT_ERROR(kernels::rope_bf16_host(c.x.narrow(1, 0, 5), c.table.cos, c.table.sin), "not contiguous float32 [L, d/2]");
}

TEST(rope_kernel_source_compiles_with_nvcc_for_hopper) {
  // NVRTC needs libnvrtc, which this machine may lack; nvcc's front end compiles the same
  // translation unit, so a syntax or type error in the device code fails here, in CI.
  if (std::system("command -v nvcc > /dev/null 2>&1") != 0) {
    std::printf("     (no nvcc on PATH: the device code was not compiled here)\n");
    return;
  }
  const std::string cu = wantest::scratch("rope_kernel.cu"), cubin = wantest::scratch("rope_kernel.cubin");
  std::ofstream(cu) << kernels::rope_source();
  const std::string cmd = "nvcc -cubin -arch=sm_90 --fmad=false -o " + cubin + " " + cu + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream out(cubin, std::ios::binary | std::ios::ate);
  const auto bytes = out ? int64_t(out.tellg()) : -1;
  std::printf("     nvcc -cubin -arch=sm_90: rc %d, %lld-byte cubin\n", rc, (long long)bytes);
  EXPECT(rc == 0 && bytes > 0);
}

TEST(rope_kernel_on_cuda_equals_its_host_emulation) {
  std::string why;
  if (!cuda_available()) {
    EXPECT(!kernels::rope_ready(at::zeros({1, 2, 1, 4}), at::zeros({2, 2}), &why));
    std::printf("     (no CUDA device: the kernel did not run here; rope_ready says: %s)\n", why.c_str());
    return;
  }
  const at::Device d(at::kCUDA, 0);
  const RopeCase c = rope_case(d);
  if (!kernels::rope_ready(c.x, c.table.cos, &why)) throw wantest::Failure{"RoPE kernel not ready on cuda:0: " + why};
  const at::Tensor got = kernels::rope_bf16(c.x, c.table.cos, c.table.sin).cpu();
  EXPECT(at::equal(got, kernels::rope_bf16_host(c.x.cpu(), c.table.cos.cpu(), c.table.sin.cpu())));
  const double e = wantest::rel_l2(got.to(at::kFloat), rope_apply_complex(c.x, c.table).cpu().to(at::kFloat));
  std::printf("     cuda:0 kernel vs ATen complex64: rel L2 %.2e\n", e);
  EXPECT(e < 1e-3);
  // rope_apply takes the kernel on CUDA bf16.
  EXPECT(at::equal(rope_apply(c.x, c.table).cpu(), got));
}

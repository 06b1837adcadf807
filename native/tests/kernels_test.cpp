// Own CUDA kernels (kernels/): each kernel's code, run on the CPU through its host emulation,
// against ATen's path; its NVRTC translation unit through nvcc where one is installed (CI has nvcc
// but no GPU); and on a CUDA device, the kernel itself against the emulation and ATen.
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "common/cuda.h"
#include "kernels/layer_norm.h"
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

TEST(kernel_sources_compile_with_nvcc_for_hopper) {
  // NVRTC needs libnvrtc, which this machine may lack; nvcc's front end compiles the same
  // translation units, so a syntax or type error in device code fails here, in CI.
  if (std::system("command -v nvcc > /dev/null 2>&1") != 0) {
    std::printf("     (no nvcc on PATH: the device code was not compiled here)\n");
    return;
  }
  for (const auto& [name, source] : {std::pair{"rope", kernels::rope_source()}, std::pair{"layer_norm", kernels::layer_norm_source()}}) {
    const std::string cu = wantest::scratch(std::string(name) + ".cu"), cubin = wantest::scratch(std::string(name) + ".cubin");
    std::ofstream(cu) << source;
    const std::string cmd = "nvcc -cubin -arch=sm_90 --fmad=false -o " + cubin + " " + cu + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream out(cubin, std::ios::binary | std::ios::ate);
    const auto bytes = out ? int64_t(out.tellg()) : -1;
    std::printf("     %s: nvcc -cubin -arch=sm_90: rc %d, %lld-byte cubin\n", name, rc, (long long)bytes);
    EXPECT(rc == 0 && bytes > 0);
  }
}

TEST(layer_norm_kernel_code_on_the_host_equals_atens_path) {
  // The DiT's shapes: D = 1536 (1.3B; 6 values per thread) and 1000 (not a multiple of the 256
  // threads), a mean far from 0, the modulation's 1 + scale and shift.
  at::Generator g = seeded_generator(at::kCPU, 4);
  for (int64_t D : {int64_t(1536), int64_t(1000)}) {
    const at::Tensor x = at::randn({1, 40, D}, g) * 2 + 3, w = 1 + at::randn({D}, g) * 0.1, b = at::randn({D}, g);
    const at::Tensor want = at::layer_norm(x, {D}, w, b, 1e-6).to(at::kBFloat16).to(at::kFloat);
    const at::Tensor got = kernels::layer_norm_bf16_host(x, w, b, 1e-6).to(at::kFloat);
    EXPECT(got.sizes() == x.sizes());
    // Different summation orders give float32 statistics a few ulps apart; after rounding to bf16
    // a value rarely moves by one bf16 ulp of its terms (relative to |normalised * w| + |b|: where
    // the bias cancels the rest, the result itself is small).
    const at::Tensor diff = (got - want).abs();
    const int64_t differing = diff.gt(0).sum().item<int64_t>();
    const double ulps = (diff / ((want - b).abs() + b.abs()).clamp_min(1e-30)).max().item<double>() * 256;
    std::printf("     D %lld: %lld of %lld values differ from ATen, by at most %.2f bf16 ulps of their terms\n",
                (long long)D, (long long)differing, (long long)diff.numel(), differing ? ulps : 0.0);
    EXPECT(differing * 50 <= diff.numel());
    EXPECT(ulps <= 2);
    EXPECT(wantest::rel_l2(got, want) < 1e-3);
  }
  EXPECT_ERROR(kernels::layer_norm_bf16_host(at::zeros({2, 8}), at::zeros({7}), at::zeros({8}), 1e-6),
               "contiguous float32 [8]");
  EXPECT_ERROR(kernels::layer_norm_bf16_host(at::zeros({2, 8}).to(at::kBFloat16), at::zeros({8}), at::zeros({8}), 1e-6),
               "x is not contiguous float32");
}

TEST(rope_kernel_on_cuda_equals_its_host_emulation) {
  std::string why;
  if (!cuda_available()) {
    const at::Tensor x = at::zeros({1, 2, 1, 4}, at::kBFloat16);
    EXPECT(!kernels::try_rope_bf16(x, at::zeros({2, 2}), at::zeros({2, 2}), &why).defined());
    std::printf("     (no CUDA device: the kernel did not run here: %s)\n", why.c_str());
    return;
  }
  const at::Device d(at::kCUDA, 0);
  const RopeCase c = rope_case(d);
  const at::Tensor y = kernels::try_rope_bf16(c.x, c.table.cos, c.table.sin, &why);
  if (!y.defined()) throw wantest::Failure{"RoPE kernel not ready on cuda:0: " + why};
  const at::Tensor got = y.cpu();
  EXPECT(at::equal(got, kernels::rope_bf16_host(c.x.cpu(), c.table.cos.cpu(), c.table.sin.cpu())));
  const double e = wantest::rel_l2(got.to(at::kFloat), rope_apply_complex(c.x, c.table).cpu().to(at::kFloat));
  std::printf("     cuda:0 kernel vs ATen complex64: rel L2 %.2e\n", e);
  EXPECT(e < 1e-3);
  // rope_apply takes the kernel on CUDA bf16.
  EXPECT(at::equal(rope_apply(c.x, c.table).cpu(), got));
}

TEST(layer_norm_kernel_on_cuda_equals_its_host_emulation) {
  std::string why;
  if (!cuda_available()) {
    EXPECT(!kernels::try_layer_norm_bf16(at::zeros({2, 8}), at::zeros({8}), at::zeros({8}), 1e-6, &why).defined());
    std::printf("     (no CUDA device: the kernel did not run here: %s)\n", why.c_str());
    return;
  }
  const at::Device d(at::kCUDA, 0);
  at::Generator g = seeded_generator(at::kCPU, 6);
  const at::Tensor x = at::randn({1, 300, 1536}, g) * 2 + 1, w = 1 + at::randn({1536}, g) * 0.1, b = at::randn({1536}, g);
  const at::Tensor y = kernels::try_layer_norm_bf16(x.to(d), w.to(d), b.to(d), 1e-6, &why);
  if (!y.defined()) throw wantest::Failure{"LayerNorm kernel not ready on cuda:0: " + why};
  const at::Tensor got = y.cpu();
  EXPECT(at::equal(got, kernels::layer_norm_bf16_host(x, w, b, 1e-6)));
  const double e = wantest::rel_l2(got.to(at::kFloat), at::layer_norm(x, {1536}, w, b, 1e-6).to(at::kBFloat16).to(at::kFloat));
  std::printf("     cuda:0 kernel vs ATen layer_norm + cast: rel L2 %.2e\n", e);
  EXPECT(e < 1e-3);
}

TEST(own_kernels_turn_off_with_the_environment) {
  const at::Tensor x = at::zeros({1, 2, 1, 4}, at::kBFloat16), table = at::zeros({2, 2});
  setenv("WANLAB_OWN_KERNELS", "0", 1);
  std::string why;
  EXPECT(!kernels::try_rope_bf16(x, table, table, &why).defined());
  EXPECT(why == "turned off by WANLAB_OWN_KERNELS=0");
  EXPECT(!kernels::try_layer_norm_bf16(at::zeros({2, 8}), at::zeros({8}), at::zeros({8}), 1e-6, &why).defined());
  EXPECT(why == "turned off by WANLAB_OWN_KERNELS=0");
  unsetenv("WANLAB_OWN_KERNELS");
  EXPECT(!kernels::try_layer_norm_bf16(at::zeros({2, 8}), at::zeros({8}), at::zeros({8}), 1e-6, &why).defined());
  EXPECT(why != "turned off by WANLAB_OWN_KERNELS=0");
}

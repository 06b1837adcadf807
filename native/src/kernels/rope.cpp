#include "kernels/rope.h"

#include <c10/core/DeviceGuard.h>

#include <cstdint>

#include "common/cuda.h"
#include "common/error.h"
#include "kernels/jit.h"
#include "kernels/rope_kernel.h"

namespace wan::kernels {

namespace {

const char* kEntry = "wanlab_rope_bf16";

// The shapes' own limits (the kernel indexes rows in 32 bits; a block row holds d/2 threads).
std::string shape_problem(const at::Tensor& x, const at::Tensor& cos) {
  if (x.dim() != 4) return concat("x has ", x.dim(), " dims, not [B, L, H, d]");
  if (!x.is_contiguous()) return "x is not contiguous";
  if (reinterpret_cast<uintptr_t>(x.data_ptr()) % 4) return "x is not 4-byte aligned (pairs move as 32-bit words)";
  const int64_t half = x.size(3) / 2, rows = x.numel() / std::max<int64_t>(1, x.size(3));
  if (x.size(3) % 2 || half < 1 || half > 1024) return concat("head dim ", x.size(3), " is not even in 2..2048");
  if (rows >= (int64_t(1) << 31)) return concat(rows, " rows exceed the kernel's 32-bit row index");
  if (cos.scalar_type() != at::kFloat || !cos.is_contiguous() || cos.dim() != 2 || cos.size(0) != x.size(1) ||
      cos.size(1) != half)
    return "the table is not contiguous float32 [L, d/2]";
  return {};
}

void run(const Kernel& k, const at::Tensor& x, const at::Tensor& y, const at::Tensor& cos, const at::Tensor& sin) {
  const unsigned int half = unsigned(x.size(3) / 2), heads = unsigned(x.size(2)), tokens = unsigned(x.size(1));
  const unsigned int rows = unsigned(x.numel() / x.size(3));
  const int per_block = std::max(1, 256 / int(half));  // head vectors per block
  const void* xp = x.data_ptr();
  void* yp = y.data_ptr();
  const void* cp = cos.data_ptr();
  const void* sp = sin.data_ptr();
  launch(k, (int64_t(rows) + per_block - 1) / per_block, int(half), per_block, cuda_current_stream(x.device()),
         {&xp, &yp, &cp, &sp, const_cast<unsigned int*>(&rows), const_cast<unsigned int*>(&heads),
          const_cast<unsigned int*>(&tokens), const_cast<unsigned int*>(&half)});
}

// Compiled and checked at the first call per device (jit's cache): several tokens, heads and a
// batch against the host emulation, bit for bit.
Kernel rope_kernel(const at::Device& dev) {
  return device_kernel(kEntry, rope_source, dev, [dev](const Kernel& k) -> std::string {
    at::Generator g = seeded_generator(at::kCPU, 7);
    const at::Tensor x = (at::randn({2, 5, 3, 128}, g) * 4).to(at::kBFloat16);
    const at::Tensor angle = at::rand({5, 64}, g) * 100;
    const at::Tensor cos = angle.cos(), sin = angle.sin();
    const at::Tensor xd = x.to(dev), y = at::empty_like(xd);
    run(k, xd, y, cos.to(dev), sin.to(dev));
    return at::equal(y.cpu(), rope_bf16_host(x, cos, sin)) ? "" : "its output differs from the host emulation of the same code";
  });
}

}  // namespace

std::string rope_source() {
  return device_source(rope_code(), concat(
      "extern \"C\" __global__ void ", kEntry,
      "(const unsigned int* x, unsigned int* y, const float* cos_t, const float* sin_t, unsigned int rows,\n"
      "    unsigned int heads, unsigned int tokens, unsigned int half) {\n"
      "  const unsigned int row = blockIdx.x * blockDim.y + threadIdx.y;\n"
      "  if (row < rows) rope_pair(row, threadIdx.x, x, y, cos_t, sin_t, heads, tokens, half);\n"
      "}\n"));
}

at::Tensor try_rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, std::string* why) {
  const Kernel k = rope_kernel(x.device());
  std::string problem = k.error;
  if (problem.empty())
    problem = x.scalar_type() != at::kBFloat16  ? "x is not bf16"
              : cos.device() != x.device()      ? "the table is on another device"
                                                : shape_problem(x, cos);
  if (!problem.empty()) {
    if (why) *why = problem;
    return {};
  }
  c10::DeviceGuard guard(x.device());
  at::Tensor y = at::empty_like(x);
  run(k, x, y, cos, sin);
  return y;
}

at::Tensor rope_bf16_host(const at::Tensor& x_in, const at::Tensor& cos_in, const at::Tensor& sin_in) {
  const at::Tensor x = x_in.contiguous(), cos = cos_in.to(at::kFloat).contiguous(), sin = sin_in.to(at::kFloat).contiguous();
  if (!x.device().is_cpu() || x.scalar_type() != at::kBFloat16) fail("rope_bf16_host: x must be bf16 on the CPU");
  const std::string problem = shape_problem(x, cos);
  if (!problem.empty()) fail("rope_bf16_host: ", problem);
  at::Tensor y = at::empty_like(x);
  const unsigned int half = unsigned(x.size(3) / 2), heads = unsigned(x.size(2)), tokens = unsigned(x.size(1));
  const unsigned int rows = unsigned(x.numel() / x.size(3));
  const auto* xp = static_cast<const unsigned int*>(x.data_ptr());
  auto* yp = static_cast<unsigned int*>(y.data_ptr());
  for (unsigned int r = 0; r < rows; ++r)
    for (unsigned int j = 0; j < half; ++j)
      rope_pair(r, j, xp, yp, cos.data_ptr<float>(), sin.data_ptr<float>(), heads, tokens, half);
  return y;
}

}  // namespace wan::kernels

#include "kernels/layer_norm.h"

#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <vector>

#include "common/cuda.h"
#include "common/error.h"
#include "kernels/jit.h"
#include "kernels/layer_norm_kernel.h"

namespace wan::kernels {

namespace {

const char* kEntry = "wanlab_layer_norm_bf16";
constexpr unsigned int kThreads = 256;  // per row; a power of two (the tree halves it)

std::string shape_problem(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (x.dim() < 1 || x.size(-1) < 1) return "x has no last dimension";
  if (x.scalar_type() != at::kFloat || !x.is_contiguous()) return "x is not contiguous float32";
  const int64_t D = x.size(-1), rows = x.numel() / D;
  if (rows >= (int64_t(1) << 31)) return concat(rows, " rows exceed the grid");
  for (const at::Tensor* t : {&w, &b})
    if (t->scalar_type() != at::kFloat || !t->is_contiguous() || t->numel() != D || t->device() != x.device())
      return concat("the weight and bias must be contiguous float32 [", D, "] on x's device");
  return {};
}

void run(const Kernel& k, const at::Tensor& x, const at::Tensor& y, const at::Tensor& w, const at::Tensor& b, double eps) {
  const unsigned int D = unsigned(x.size(-1));
  const float e = float(eps);
  const void* xp = x.data_ptr();
  void* yp = y.data_ptr();
  const void* wp = w.data_ptr();
  const void* bp = b.data_ptr();
  launch(k, x.numel() / D, int(kThreads), 1, cuda_current_stream(x.device()),
         {&xp, &yp, &wp, &bp, const_cast<unsigned int*>(&D), const_cast<float*>(&e)});
}

Kernel layer_norm_kernel(const at::Device& dev) {
  return device_kernel(kEntry, layer_norm_source, dev, [dev](const Kernel& k) -> std::string {
    // Rows of a D that is not a multiple of the threads, an offset mean, a non-trivial affine.
    at::Generator g = seeded_generator(at::kCPU, 9);
    const at::Tensor x = at::randn({7, 1000}, g) * 3 + 0.5, w = at::randn({1000}, g), b = at::randn({1000}, g);
    const at::Tensor y = at::empty(x.sizes(), x.options().dtype(at::kBFloat16).device(dev));
    run(k, x.to(dev), y, w.to(dev), b.to(dev), 1e-6);
    return at::equal(y.cpu(), layer_norm_bf16_host(x, w, b, 1e-6)) ? ""
                                                                   : "its output differs from the host emulation of the same code";
  });
}

}  // namespace

std::string layer_norm_source() {
  return device_source(layer_norm_code(), concat(
      "extern \"C\" __global__ void ", kEntry,
      "(const float* x, unsigned short* y, const float* w, const float* b, unsigned int D, float eps) {\n"
      "  __shared__ float partial[", kThreads, "];\n"
      "  const unsigned int tid = threadIdx.x, threads = blockDim.x;\n"
      "  const float* row = x + (unsigned long long)blockIdx.x * D;\n"
      "  partial[tid] = ln_partial_sum(row, tid, threads, D);\n"
      "  __syncthreads();\n"
      "  for (unsigned int s = threads / 2; s > 0; s >>= 1) { ln_tree_step(partial, tid, s); __syncthreads(); }\n"
      "  const float mean = partial[0] / (float)D;\n"
      "  __syncthreads();\n"
      "  partial[tid] = ln_partial_squares(row, mean, tid, threads, D);\n"
      "  __syncthreads();\n"
      "  for (unsigned int s = threads / 2; s > 0; s >>= 1) { ln_tree_step(partial, tid, s); __syncthreads(); }\n"
      "  ln_write(row, y + (unsigned long long)blockIdx.x * D, w, b, mean, ln_rstd(partial[0], D, eps), tid, threads, D);\n"
      "}\n"));
}

at::Tensor try_layer_norm_bf16(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps,
                               std::string* why) {
  const Kernel k = layer_norm_kernel(x.device());
  const std::string problem = k ? shape_problem(x, w, b) : k.error;
  if (!problem.empty()) {
    if (why) *why = problem;
    return {};
  }
  c10::DeviceGuard guard(x.device());
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(at::kBFloat16));
  run(k, x, y, w, b, eps);
  return y;
}

at::Tensor layer_norm_bf16_host(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in, double eps) {
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  if (!x.device().is_cpu()) fail("layer_norm_bf16_host: x must be on the CPU");
  const std::string problem = shape_problem(x, w, b);
  if (!problem.empty()) fail("layer_norm_bf16_host: ", problem);
  const unsigned int D = unsigned(x.size(-1));
  const int64_t rows = x.numel() / D;
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(at::kBFloat16));
  auto* yp = static_cast<unsigned short*>(y.data_ptr());
  std::vector<float> partial(kThreads);
  auto reduce = [&] {  // the kernel's tree, one stride (one __syncthreads) at a time
    for (unsigned int s = kThreads / 2; s > 0; s >>= 1)
      for (unsigned int tid = 0; tid < kThreads; ++tid) ln_tree_step(partial.data(), tid, s);
    return partial[0];
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data_ptr<float>() + r * D;
    for (unsigned int tid = 0; tid < kThreads; ++tid) partial[tid] = ln_partial_sum(row, tid, kThreads, D);
    const float mean = reduce() / float(D);
    for (unsigned int tid = 0; tid < kThreads; ++tid) partial[tid] = ln_partial_squares(row, mean, tid, kThreads, D);
    const float rstd = ln_rstd(reduce(), D, float(eps));
    for (unsigned int tid = 0; tid < kThreads; ++tid)
      ln_write(row, yp + r * D, w.data_ptr<float>(), b.data_ptr<float>(), mean, rstd, tid, kThreads, D);
  }
  return y;
}

}  // namespace wan::kernels

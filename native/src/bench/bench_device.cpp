#include "bench/bench_device.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "common/cuda.h"
#include "common/error.h"
#include "models/attention.h"
#include "models/placement.h"

namespace wan {

namespace {
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times fn() `iters` times after `warmup` calls, the device synchronised around each.
std::vector<double> time_calls(const std::function<void()>& fn, const at::Device& d, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  device_synchronize(d);
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    device_synchronize(d);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return t;
}
}  // namespace

nlohmann::json bench_matmul(const std::string& device, int64_t n, int iters, const std::string& dtype) {
  if (n < 1 || iters < 1) fail("bench matmul: need n >= 1 and iters >= 1, got ", n, " and ", iters);
  c10::InferenceMode guard;
  const at::Device d = parse_device(device);
  const at::ScalarType dt = parse_compute_dtype(dtype);
  at::Generator g = seeded_generator(d, 1234);
  at::Tensor a = at::randn({n, n}, g, at::TensorOptions().device(d)).to(dt);
  at::Tensor b = at::randn({n, n}, g, at::TensorOptions().device(d)).to(dt);
  at::Tensor c;
  std::vector<double> t = time_calls([&] { c = at::mm(a, b); }, d, 3, iters);
  const double flops = 2.0 * double(n) * double(n) * double(n), med = median_of(t);
  return {{"bench", "matmul"},
          {"device", d.is_cuda() ? cuda_device_name(d) : "cpu"},
          {"n", n},
          {"dtype", dtype},
          {"times_s", t},
          {"median_s", med},
          {"tflops_per_s", flops / med / 1e12},
          {"formula", "2 n^3 / median time"}};
}

nlohmann::json bench_attention(const std::string& device, int64_t tokens, int64_t heads, int64_t head_dim, int iters) {
  c10::InferenceMode guard;
  const at::Device d = parse_device(device);
  at::Generator g = seeded_generator(d, 99);
  auto opts = at::TensorOptions().device(d);
  at::Tensor q = at::randn({1, heads, tokens, head_dim}, g, opts).to(at::kBFloat16);
  at::Tensor k = at::randn({1, heads, tokens, head_dim}, g, opts).to(at::kBFloat16);
  at::Tensor v = at::randn({1, heads, tokens, head_dim}, g, opts).to(at::kBFloat16);
  // Reference on 256 query rows: float32 math.
  const int64_t rows = std::min<int64_t>(tokens, 256);
  at::Tensor ref = detail::attention_chunked(q.narrow(2, 0, rows).to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), 0);
  const double flops = 4.0 * double(tokens) * double(tokens) * double(head_dim) * double(heads);
  nlohmann::json out = nlohmann::json::array();
  for (const char* name : {"auto", "flash", "cudnn", "efficient"}) {
    nlohmann::json r = {{"backend", name}};
    try {
      set_attention_backend(name);
      at::Tensor o;
      std::vector<double> t = time_calls([&] { o = attention(q, k, v); }, d, 2, iters);
      const double med = median_of(t);
      at::Tensor diff = o.narrow(2, 0, rows).to(at::kDouble) - ref.to(at::kDouble);
      r["times_s"] = t;
      r["median_s"] = med;
      r["tflops_per_s"] = flops / med / 1e12;
      r["rel_l2_vs_f32_math"] = diff.norm().item<double>() / ref.to(at::kDouble).norm().item<double>();
    } catch (const std::exception& e) {
      r["error"] = std::string(e.what()).substr(0, 300);
    }
    out.push_back(r);
  }
  set_attention_backend("auto");
  return {{"bench", "attention"},
          {"device", d.is_cuda() ? cuda_device_name(d) : "cpu"},
          {"shape", {1, heads, tokens, head_dim}},
          {"dtype", "bf16"},
          {"flops_formula", "4 L^2 d H"},
          {"backends", out}};
}

}  // namespace wan

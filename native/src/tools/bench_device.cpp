#include "tools/bench_device.h"

#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "tools/median.h"
#include "common/cuda.h"
#include "common/error.h"
#include "kernels/layer_norm.h"
#include "kernels/rope.h"
#include "kernels/attention.h"
#include "models/placement.h"
#include "models/rope.h"

namespace wan {

namespace {
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

nlohmann::json bench_elementwise(const std::string& device, int64_t tokens, int64_t dim, int64_t heads, int64_t ffn_dim,
                                 int64_t layers, int iters) {
  c10::InferenceMode guard;
  const at::Device d = parse_device(device);
  at::Generator g = seeded_generator(d, 5);
  auto f32 = at::TensorOptions().device(d).dtype(at::kFloat);
  const int64_t L = tokens, D = dim, hd = dim / heads;
  at::Tensor x = at::randn({1, L, D}, g, f32);                      // residual, float32
  at::Tensor y = at::randn({1, L, D}, g, f32).to(at::kBFloat16);    // a sublayer's output
  at::Tensor shift = at::randn({1, 1, D}, g, f32), scale = at::randn({1, 1, D}, g, f32).mul_(0.1);
  at::Tensor w = at::ones({D}, f32).to(at::kBFloat16);
  RopeTable rope = rope_complex(rope_table(hd, 1, 1, L), d);        // [L, hd/2]: any grid of L tokens
  at::Tensor q = y.view({1, L, heads, hd});
  at::Tensor fw = (at::randn({ffn_dim, D}, g, f32) * 0.02).to(at::kBFloat16), fb = at::zeros({ffn_dim}, f32).to(at::kBFloat16);

  // The copy bandwidth (read + write) of this device: the ceiling of a memory-bound kernel.
  at::Tensor big = at::empty({int64_t(1) << 29}, f32), dst = at::empty_like(big);  // 2 GiB
  std::vector<double> tc = time_calls([&] { dst.copy_(big); }, d, 2, iters);
  const double bw = 2.0 * double(big.numel()) * 4 / median_of(tc);
  big = at::Tensor(), dst = at::Tensor();

  const double LD = double(L) * double(D);
  struct Op {
    const char* name;
    double min_bytes;  // one fused pass: inputs read once, outputs written once
    int per_block;     // how many times a DiT block runs it
    std::function<void()> fn;
  };
  // A ring pass's merge of one attention part into the running result (parallel/ring.cpp), at the
  // whole sequence's shape: with r ranks each merges [H/u, L/r, d] r - 1 times per block.
  at::Tensor acc = at::randn({1, heads, L, hd}, g, f32), acc_lse = at::randn({1, heads, L}, g, f32);
  const AttentionPart part{at::randn({1, heads, L, hd}, g, f32).to(at::kBFloat16), at::randn({1, heads, L}, g, f32)};
  std::vector<Op> ops = {
      {"layernorm_modulate_cast (f32 in, bf16 out)", LD * (4 + 2), 3,
       [&] { (void)at::layer_norm(x, {D}, (1 + scale).reshape({D}), shift.reshape({D}), 1e-6).to(at::kBFloat16); }},
      {"rms_norm (bf16)", LD * (2 + 2), 2, [&] {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
         (void)at::rms_norm(y, {D}, w, 1e-6);
#else
         at::Tensor xf = y.to(at::kFloat);
         (void)((xf * at::rsqrt(xf.pow(2).mean(-1, true) + 1e-6)).to(at::kBFloat16) * w);
#endif
       }},
      {"rope complex64 (bf16 in/out)", LD * (2 + 2) + double(L) * hd / 2 * 8, 2, [&] { (void)rope_apply_complex(q, rope); }},
      {"residual x += gate * y (in place)", LD * (4 + 2 + 4), 2, [&] { x.addcmul_(y, scale); }},
      {"residual x += y (cross-attention)", LD * (4 + 2 + 4), 1, [&] { x.add_(y); }},
      {"ring merge_attention_part (bf16 part into the f32 result, per ring pass)", LD * (4 + 2 + 4) + double(L) * heads * 4 * 3,
       0, [&] {
         // In place on acc, as in the ring; the two weights sum to 1, so repeated calls keep it bounded.
         at::Tensor a = acc, l = acc_lse;
         merge_attention_part(a, l, part);
       }},
      {"linear + gelu_tanh (two passes over [L, F])", 0, 0,
       [&] { (void)at::gelu(at::linear(y, fw, fb), "tanh"); }},
      {"linear with the gelu epilogue", 0, 0, [&] {
#if TORCH_VERSION_MAJOR >= 2
         (void)at::_addmm_activation(fb, y.view({L, D}), fw.t(), 1, 1, true);
#else
         (void)at::gelu(at::linear(y, fw, fb), "tanh");
#endif
       }},
  };
  nlohmann::json rows = nlohmann::json::array();
  double block_s = 0, block_fused_s = 0;
  for (const Op& op : ops) {
    std::vector<double> t = time_calls(op.fn, d, 2, iters);
    const double med = median_of(t);
    nlohmann::json r = {{"op", op.name}, {"median_s", med}, {"times_s", t}};
    if (op.min_bytes > 0) {
      const double fused = op.min_bytes / bw;
      r["min_bytes"] = op.min_bytes;
      r["achieved_gb_per_s"] = op.min_bytes / med / 1e9;
      r["fused_at_copy_bandwidth_s"] = fused;
      r["per_block"] = op.per_block;
      block_s += op.per_block * med;
      block_fused_s += op.per_block * fused;
    }
    rows.push_back(r);
  }
  // The own kernels against the ATen sequences above they replace, on the same inputs: time,
  // bandwidth, the ratio, the saving per forward and how many output values differ.
  // own(why): the kernel's output, or undefined with why set when it cannot run here.
  auto own_kernel = [&](const char* name, const char* aten_op, double bytes, int per_block,
                        const std::function<at::Tensor(std::string*)>& own, const std::function<at::Tensor()>& aten) {
    nlohmann::json r = {{"op", name}, {"replaces", aten_op}};
    std::string why;
    const at::Tensor first = own(&why);
    if (!first.defined()) {
      r["unavailable"] = why;
      return r;
    }
    std::vector<double> t = time_calls([&] { (void)own(nullptr); }, d, 2, iters);
    double aten_s = 0;
    for (const auto& row : rows)
      if (row["op"] == aten_op) aten_s = row["median_s"].get<double>();
    const double med = median_of(t);
    const at::Tensor diff = (first.to(at::kFloat) - aten().to(at::kFloat)).abs();
    r.update({{"median_s", med}, {"times_s", t}, {"achieved_gb_per_s", bytes / med / 1e9}, {"aten_median_s", aten_s},
              {"aten_over_own", aten_s / med}, {"per_forward_saving_s", (aten_s - med) * per_block * double(layers)},
              {"max_abs_diff_vs_aten", diff.max().item<double>()},
              {"values_differing_from_aten", diff.gt(0).sum().item<int64_t>()}, {"values", diff.numel()}});
    return r;
  };
  const at::Tensor qc = q.contiguous();
  const at::Tensor w1 = (1 + scale).reshape({D}), b1 = shift.reshape({D}).contiguous();
  nlohmann::json own = nlohmann::json::array();
  own.push_back(own_kernel("rope own kernel (bf16 in/out)", "rope complex64 (bf16 in/out)",
                           LD * (2 + 2) + double(L) * hd / 2 * 8, 2,
                           [&](std::string* why) { return kernels::try_rope_bf16(qc, rope.cos, rope.sin, why); },
                           [&] { return rope_apply_complex(q, rope); }));
  own.push_back(own_kernel("layernorm_modulate_cast own kernel (f32 in, bf16 out)",
                           "layernorm_modulate_cast (f32 in, bf16 out)", LD * (4 + 2), 3,
                           [&](std::string* why) { return kernels::try_layer_norm_bf16(x, w1, b1, 1e-6, why); },
                           [&] { return at::layer_norm(x, {D}, w1, b1, 1e-6).to(at::kBFloat16); }));

  return {{"bench", "elementwise"},
          {"device", d.is_cuda() ? cuda_device_name(d) : "cpu"},
          {"tokens", L}, {"dim", D}, {"heads", heads}, {"ffn_dim", ffn_dim}, {"layers", layers},
          {"copy_gb_per_s", bw / 1e9},
          {"ops", rows},
          {"own_kernels", own},
          {"per_block_s", block_s},
          {"per_block_if_fused_s", block_fused_s},
          {"per_forward_s", block_s * layers},
          {"per_forward_saving_if_fused_s", (block_s - block_fused_s) * layers},
          {"note", "min_bytes: each input read once, each output written once; fused_at_copy_bandwidth_s = "
                   "min_bytes / the copy bandwidth measured here (an upper bound on what an own kernel gains)"}};
}

}  // namespace wan

#include "tools/doctor.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <thread>

#include "common/cuda.h"
#include "common/error.h"
#include "common/proc_status.h"
#include "kernels/layer_norm.h"
#include "kernels/rope.h"
#include "kernels/attention.h"
#include "models/memory_model.h"
#include "models/rope.h"
#include "parallel/devices.h"

namespace wan {

std::string libtorch_version() { return concat(TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, ".", TORCH_VERSION_PATCH); }

namespace {

constexpr bool nccl_built() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

std::string first_line(const std::string& s) { return s.substr(0, std::min(s.find('\n'), size_t(300))); }

double rel_l2(const at::Tensor& x, const at::Tensor& ref) {
  const at::Tensor a = x.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
  return (a - r).norm().item<double>() / std::max(r.norm().item<double>(), 1e-300);
}

// One numeric check: `fn` returns the relative L2 of the device's result against float32 on the
// same device; a throw is a failed check carrying its message.
nlohmann::json numeric_check(const std::function<double()>& fn, double tolerance) {
  try {
    const double e = fn();
    return {{"ok", e <= tolerance}, {"rel_l2", e}, {"tolerance", tolerance}};
  } catch (const std::exception& e) {
    return {{"ok", false}, {"error", first_line(e.what())}};
  }
}

// An own kernel: run it (first use compiles and checks it, kernels/jit.h) and compare with its
// host emulation; unavailable is not a failure (ATen's path runs), a differing value is.
nlohmann::json own_kernel_check(const std::function<at::Tensor(std::string*)>& on_device,
                                const std::function<at::Tensor()>& on_host) {
  try {
    std::string why;
    const at::Tensor out = on_device(&why);
    if (!out.defined()) return {{"ok", false}, {"unavailable", first_line(why)}};
    const int64_t differ = out.to(at::kCPU).ne(on_host()).sum().item<int64_t>();
    return {{"ok", differ == 0}, {"values_differing_from_host_emulation", differ}, {"values", out.numel()}};
  } catch (const std::exception& e) {
    return {{"ok", false}, {"error", first_line(e.what())}};
  }
}

}  // namespace

nlohmann::json device_checks(const at::Device& d) {
  c10::InferenceMode guard;
  at::Generator g = seeded_generator(d, 1);
  const auto f32 = at::TensorOptions().device(d).dtype(at::kFloat);
  nlohmann::json c;
  c["matmul_bf16"] = numeric_check([&] {
    const at::Tensor a = at::randn({512, 512}, g, f32), b = at::randn({512, 512}, g, f32);
    const at::Tensor a16 = a.to(at::kBFloat16), b16 = b.to(at::kBFloat16);
    return rel_l2(at::matmul(a16, b16), at::matmul(a16.to(at::kFloat), b16.to(at::kFloat)));
  }, 1e-2);
  // q, k, v: [1, 4, 256, 64] bf16; the reference is the float32 math path on the same values.
  const at::Tensor q = at::randn({1, 4, 256, 64}, g, f32).to(at::kBFloat16);
  const at::Tensor k = at::randn({1, 4, 256, 64}, g, f32).to(at::kBFloat16);
  const at::Tensor v = at::randn({1, 4, 256, 64}, g, f32).to(at::kBFloat16);
  at::Tensor ref_lse;
  const at::Tensor ref = detail::attention_chunked(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), 0, &ref_lse);
  c["attention_bf16"] = numeric_check([&] { return rel_l2(attention(q, k, v), ref); }, 2e-2);
  c["ring_attention_part_bf16"] = numeric_check([&] {
    const AttentionPart p = attention_part(q, k, v);
    return std::max(rel_l2(p.out, ref), rel_l2(p.lse, ref_lse));
  }, 2e-2);
  // Own kernels at the DiT's layouts: RoPE on [1, L, H, d] bf16, LayerNorm on [L, D] float32.
  // head_dim 128, the DiT's: DiffSynth's 3-D split (dim // 3 per spatial axis) needs even axis dims.
  const RopeTable t = rope_table(128, 1, 8, 8);  // 64 tokens, [64, 64]
  const at::Tensor x = at::randn({1, 64, 2, 128}, g, f32).to(at::kBFloat16);
  const at::Tensor cos = t.cos.to(d, at::kFloat), sin = t.sin.to(d, at::kFloat);
  c["own_kernel_rope"] = own_kernel_check([&](std::string* why) { return kernels::try_rope_bf16(x, cos, sin, why); },
                                          [&] { return kernels::rope_bf16_host(x.cpu(), cos.cpu(), sin.cpu()); });
  const at::Tensor h = at::randn({64, 256}, g, f32), w = at::randn({256}, g, f32), b = at::randn({256}, g, f32);
  c["own_kernel_layer_norm"] = own_kernel_check(
      [&](std::string* why) { return kernels::try_layer_norm_bf16(h, w, b, 1e-6, why); },
      [&] { return kernels::layer_norm_bf16_host(h.cpu(), w.cpu(), b.cpu(), 1e-6); });
  return c;
}

namespace {

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (l.find_first_not_of(" \t") != std::string::npos) out.push_back(l);
  return out;
}

}  // namespace

nlohmann::json doctor_report() {
  nlohmann::json r;
  r["libtorch"] = {{"version", libtorch_version()},
                   {"cuda", cuda_built()},
                   {"c10d", {{"gloo", true}, {"nccl", nccl_built()}}},
                   {"config", lines(at::show_config())}};
  r["cpu"] = {{"threads", at::get_num_threads()}, {"hardware_threads", std::thread::hardware_concurrency()}};
  nlohmann::json env = nlohmann::json::object();
  for (const char* name : {"CUDA_VISIBLE_DEVICES", "WANLAB_OWN_KERNELS", "WANLAB_NVRTC", "WANLAB_LOG_LEVEL"})
    if (const char* v = std::getenv(name)) env[name] = v;
  r["environment"] = env;
  std::string why;
  const std::string chosen = resolve_devices("auto", &why);
  r["auto_devices"] = {{"chosen", chosen}, {"why", why}};

  std::vector<std::string> problems, warnings;
  nlohmann::json devices = nlohmann::json::array();
  const int n = cuda_device_count();
  for (int i = 0; i < n; ++i) {
    const at::Device d(at::kCUDA, c10::DeviceIndex(i));
    const int cc = cuda_compute_capability(d);
    const DeviceCapacity m = cuda_memory_info(d);
    nlohmann::json dev = {{"device", d.str()}, {"name", cuda_device_name(d)},
                          {"compute_capability", concat(cc / 10, ".", cc % 10)},
                          {"total_bytes", m.total}, {"free_bytes", m.free}};
    dev["checks"] = device_checks(d);
    for (const auto& [name, c] : dev["checks"].items()) {
      if (c["ok"].get<bool>()) continue;
      if (c.contains("unavailable"))
        warnings.push_back(concat(d.str(), ": ", name, " unavailable (", c["unavailable"].get<std::string>(),
                                  "): ATen's slower path runs instead"));
      else if (c.contains("error"))
        problems.push_back(concat(d.str(), ": ", name, " failed: ", c["error"].get<std::string>()));
      else if (c.contains("rel_l2"))
        problems.push_back(concat(d.str(), ": ", name, " is off: relative L2 ", c["rel_l2"].get<double>(), " > ",
                                  c["tolerance"].get<double>()));
      else
        problems.push_back(concat(d.str(), ": ", name, ": ", c["values_differing_from_host_emulation"].get<int64_t>(),
                                  " values differ from its host emulation"));
    }
    devices.push_back(dev);
  }
  r["cuda_devices"] = devices;

  std::string message;
  if (!cuda_built()) {
    message = concat("runs on the CPU in float32: this build links libtorch ", libtorch_version(),
                     " without CUDA. For NVIDIA GPUs, make a CUDA PyTorch importable by python3 (or set "
                     "WANLAB_TORCH_DIR to its torch.utils.cmake_prefix_path) and rebuild: npm run build:native, "
                     "or cmake -S native -B native/build on a machine without Node");
  } else if (n == 0) {
    problems.push_back(concat(why, ": runs fall back to the CPU in float32"));
    message = concat("runs on the CPU in float32: ", why);
  } else {
    message = concat("runs on cuda:0 (", cuda_device_name(at::Device(at::kCUDA, 0)), ") in bf16; ", n, " CUDA device",
                     n == 1 ? "" : "s", " visible", n > 1 ? concat(": --devices cuda:0-", n - 1, " for a device group") : "");
    if (!nccl_built())
      warnings.push_back("this CUDA build has no NCCL (nccl.h was not found when it was built: set WANLAB_NCCL_INCLUDE "
                         "and rebuild): CUDA ranks cannot form a device group");
  }
  r["runs_on"] = chosen == "cpu" ? "cpu f32" : concat(chosen, " bf16");
  // What --budget auto would allow where runs go, and the host's memory (streamed blocks are
  // pinned there; a CPU text encoder computes there).
  r["host_memory"] = {{"total_bytes", meminfo_bytes("MemTotal:")}, {"available_bytes", meminfo_bytes("MemAvailable:")}};
  const at::Device runs = aten_device(parse_devices(chosen)[0]);
  try {
    std::string how;
    const int64_t bytes = auto_memory_budget(runs, &how);
    r["budget_auto"] = {{"device", runs.str()}, {"bytes", bytes}, {"how", how}};
  } catch (const Error& e) {
    warnings.push_back(concat("--budget auto cannot be used here: ", e.what()));
  }
  r["problems"] = problems;
  r["warnings"] = warnings;
  r["ok"] = problems.empty();
  r["message"] = message;
  return r;
}

}  // namespace wan

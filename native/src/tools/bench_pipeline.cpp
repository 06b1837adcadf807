#include "tools/bench_pipeline.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "tools/bench_device.h"
#include "tools/bench_models.h"
#include "tools/random_prompt.h"
#include "common/cuda.h"
#include "common/error.h"
#include "common/proc_status.h"
#include "kernels/attention.h"
#include "models/latent_grid.h"
#include "models/memory_model.h"
#include "models/placement.h"
#include "models/random_weights.h"
#include "pipeline/t2v.h"

namespace wan {

nlohmann::json bench_t2v(const PipelineBenchOptions& o) {
  if (o.steps < 2) fail("bench t2v: --steps must be at least 2 (the first step is a warm-up), got ", o.steps);
  const at::Device dev = parse_device(o.device);
  const auto wall0 = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  double peak = o.peak_tflops;
  nlohmann::json matmul;
  if (peak <= 0 && dev.is_cuda()) {
    matmul = bench_matmul(o.device);
    peak = matmul["tflops_per_s"].get<double>();
  }
  set_attention_backend(o.attention);

  auto t_weights = std::chrono::steady_clock::now();
  LoadedModel m = random_model(o.dims, o.seed, dev, at::kBFloat16, o.dit_f8);
  const ModelArch arch = m.arch;
  ParallelOptions par;
  par.devices = dev.is_cuda() ? dev.str() : "cpu";
  ComputeOptions comp;
  comp.dtype = o.dtype;
  comp.t5_device = o.t5_device;
  comp.t5_offload = o.t5_offload;
  comp.persistent_params = o.persistent_params;
  comp.memory_budget = o.memory_budget;
  comp.budget_video = {o.height, o.width, o.frames, o.tiled};
  T2VEngine engine(std::move(m), par, comp);
  device_synchronize(dev);
  const double weights_s = since(t_weights);
  const DeviceMemory resident = device_memory(dev);

  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(o.seed + 7);
  T2VRequest r = random_prompts(arch, 80, 60, g);
  const int64_t L = arch.dit.text_len;
  r.seed = o.seed;
  r.height = o.height, r.width = o.width, r.num_frames = o.frames;
  r.num_inference_steps = o.steps;
  r.cfg_scale = o.cfg_scale;
  r.tiled = o.tiled;
  if (o.v2v_strength > 0) {  // [3, F, H, W] in [-1, 1]: bands moving one pixel a frame
    const at::Tensor fi = at::arange(o.frames, at::kFloat).view({1, -1, 1, 1});
    const at::Tensor yi = at::arange(o.height, at::kFloat).view({1, 1, -1, 1});
    const at::Tensor xi = at::arange(o.width, at::kFloat).view({1, 1, 1, -1});
    const at::Tensor ci = at::arange(3, at::kFloat).view({-1, 1, 1, 1});
    r.input_video = at::sin((xi + 2 * yi + 3 * fi) / 9.0 + ci).contiguous();
    r.denoising_strength = o.v2v_strength;
  }
  T2VResult res = engine.generate(r);
  const nlohmann::json& t = res.timings;

  std::vector<double> steps = t["step_s"].get<std::vector<double>>();
  std::vector<double> warm(steps.begin() + 1, steps.end());
  std::sort(warm.begin(), warm.end());
  const double step_s = warm[warm.size() / 2];
  const double encode_s = t["encode_s"].get<double>(), decode_s = t["decode_s"].get<double>();

  const bool cfg = o.cfg_scale != 1.0;
  const LatentGrid grid = latent_grid(o.frames, o.height, o.width);
  const int64_t f = grid.frames, h = grid.height, w = grid.width, tokens = grid.tokens(arch.dit.patch);
  const double dit = dit_flops(arch.dit, tokens, L), t5 = t5_flops(arch.t5, L), vae = vae_decode_flops(arch.vae, f, h, w);
  const double per_step = (cfg ? 2 : 1) * dit;
  const double full_flops = (cfg ? 2 : 1) * t5 + o.full_steps * per_step + vae;
  const double full_s = encode_s + o.full_steps * step_s + decode_s;
  nlohmann::json j = {
      {"bench", "t2v"},
      {"dims", o.dims},
      {"device", dev.is_cuda() ? cuda_device_name(dev) : "cpu"},
      {"placement", engine.placement()},
      {"attention", o.attention},
      {"video", {{"frames", o.frames}, {"height", o.height}, {"width", o.width}, {"tokens", tokens},
                 {"cfg_scale", o.cfg_scale}, {"tiled", o.tiled}}},
      {"steps_run", o.steps},
      {"weights_s", weights_s},
      {"encode_s", encode_s},
      {"step_s", steps},
      {"step_median_s", step_s},
      {"decode_s", decode_s},
      {"run_s", encode_s + t["denoise_s"].get<double>() + decode_s},
      {"v2v_strength", o.v2v_strength},
      {"video_encode_s", t.value("video_encode_s", 0.0)},
      {"flops", {{"dit_forward", dit}, {"step", per_step}, {"t5", t5}, {"vae_decode", vae}, {"full", full_flops}}},
      {"step_tflops_per_s", per_step / step_s / 1e12},
      {"full_steps", o.full_steps},
      {"full_estimate_s", full_s},
      {"device_resident_bytes", resident.allocated},
      {"device_peak_bytes", t.value("device_peak_bytes", nlohmann::json())},
      // What the caching allocator held at its largest per stage, and what the driver saw in use
      // at the end (the CUDA context and libraries' workspaces too): the margin a budget needs.
      {"device_peak_reserved_bytes", t.value("device_peak_reserved_bytes", nlohmann::json())},
      {"device_driver_used_bytes", dev.is_cuda() ? [&] { const DeviceCapacity c = cuda_memory_info(dev); return c.total - c.free; }()
                                                 : int64_t(-1)},
      {"peak_rss_bytes", proc_status_bytes("VmHWM:")},
      {"bench_wall_s", since(wall0)}};
  if (peak > 0) {
    j["peak_tflops_per_s"] = peak;
    j["step_fraction_of_peak"] = per_step / step_s / 1e12 / peak;
    j["full_flop_bound_s"] = full_flops / (peak * 1e12);
    j["full_over_flop_bound"] = full_s / (full_flops / (peak * 1e12));
  }
  if (!matmul.is_null()) j["matmul"] = matmul;
  // The memory model's prediction (models/memory_model.h) beside each measured stage peak.
  const MemoryPlan plan = engine.memory_plan(r);
  j["predicted"] = to_json(plan);
  if (t.contains("device_peak_bytes")) {
    const std::string d = dev.str();
    nlohmann::json ratio;
    const std::pair<const char*, int64_t> stages[] = {
        {"encode", plan.encode()}, {"denoise", plan.denoise()}, {"decode", plan.decode()}};
    for (const auto& [stage, predicted] : stages)
      if (t["device_peak_bytes"].contains(stage) && t["device_peak_bytes"][stage].contains(d))
        ratio[stage] = double(predicted) / t["device_peak_bytes"][stage][d].get<double>();
    j["predicted_over_measured"] = ratio;
  }
  return j;
}

}  // namespace wan

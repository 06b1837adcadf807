#include "tools/device_parity.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include "tools/random_prompt.h"
#include "common/error.h"
#include "models/latent_grid.h"
#include "models/placement.h"
#include "pipeline/t2v.h"

namespace wan {

namespace {
double rel_l2(const at::Tensor& a, const at::Tensor& ref) {
  at::Tensor x = a.to(at::kCPU, at::kDouble), y = ref.to(at::kCPU, at::kDouble);
  if (x.sizes() != y.sizes()) fail("parity: shapes differ: ", x.sizes(), " vs ", y.sizes());
  return (x - y).norm().item<double>() / std::max(y.norm().item<double>(), 1e-300);
}
nlohmann::json entry(const at::Tensor& a, const at::Tensor& ref) {
  at::Tensor d = ref.to(at::kCPU, at::kDouble);
  return {{"rel_l2", rel_l2(a, ref)},
          {"shape", a.sizes().vec()},
          {"ref_rms", (d.pow(2).mean()).sqrt().item<double>()},
          {"max_abs_diff", (a.to(at::kCPU, at::kDouble) - d).abs().max().item<double>()}};
}
}  // namespace

nlohmann::json device_parity(const std::string& model_dir, const ParityOptions& o) {
  const at::Device dev = parse_device(o.device);
  ParallelOptions on_cpu, on_dev;
  on_dev.devices = dev.is_cuda() ? dev.str() : "cpu";
  ComputeOptions ref_compute, dev_compute;
  ref_compute.dtype = "f32";
  dev_compute.dtype = o.dtype;
  T2VEngine ref(model_dir, on_cpu, ref_compute);
  T2VEngine eng(model_dir, on_dev, dev_compute);
  const ModelArch& arch = ref.model().arch;
  c10::InferenceMode guard;

  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  T2VRequest r = random_prompts(arch, 12, 7, g);
  r.seed = o.seed, r.height = o.height, r.width = o.width, r.num_frames = o.frames;
  r.num_inference_steps = o.steps, r.cfg_scale = o.cfg_scale;

  nlohmann::json j;
  j["device"] = on_dev.devices;
  j["placement"] = eng.placement();
  // UMT5: the prompt's embedding.
  at::Tensor c_ref = ref.t5().encode_prompt(r.prompt_ids.unsqueeze(0), r.prompt_mask.unsqueeze(0)).squeeze(0);
  at::Tensor c_dev = eng.t5().encode_prompt(r.prompt_ids.unsqueeze(0), r.prompt_mask.unsqueeze(0)).squeeze(0);
  j["t5"] = entry(c_dev, c_ref);
  // DiT: one evaluation on random latents at t = 500, both on the reference context.
  const LatentGrid grid = latent_grid(o.frames, o.height, o.width);
  const int64_t f = grid.frames, h = grid.height, w = grid.width;
  at::Tensor x = at::randn({arch.dit.in_dim, f, h, w}, g, at::kFloat);
  at::Tensor v_ref = ref.dit(at::kCPU).forward(x, 500.0, c_ref);
  at::Tensor v_dev = eng.dit(dev).forward(x.to(dev), 500.0, c_ref.to(dev));
  j["dit"] = entry(v_dev, v_ref);
  // VAE: decode of random latents.
  at::Tensor z = at::randn({arch.vae.z_dim, f, h, w}, g, at::kFloat);
  VaeDecodeOptions d;
  d.tiled = false;
  j["vae_decode"] = entry(eng.vae().decode(z, d), ref.vae().decode(z, d));
  // The whole pipeline, CFG included.
  T2VResult a = ref.generate(r), b = eng.generate(r);
  j["t2v_context"] = entry(b.context, a.context);
  j["t2v_latents"] = entry(b.latents, a.latents);
  j["t2v_video"] = entry(b.video, a.video);
  j["steps"] = o.steps;
  j["video"] = {{"frames", o.frames}, {"height", o.height}, {"width", o.width}, {"cfg_scale", o.cfg_scale}};
  if (o.persistent_params >= 0) {
    // The same DiT with its blocks streamed from pinned host memory must give the same bits as the
    // resident one (the same kernels on the same inputs).
    ComputeOptions streamed = dev_compute;
    streamed.persistent_params = o.persistent_params;
    T2VEngine off(model_dir, on_dev, streamed);
    at::Tensor v_off = off.dit(dev).forward(x.to(dev), 500.0, c_ref.to(dev));
    j["dit_offloaded"] = entry(v_off, v_dev);
    j["dit_offloaded"]["offloaded_params"] = off.placement()["dit_offloaded_params"];
    j["dit_offloaded"]["bitwise_equal"] = at::equal(v_off.cpu(), v_dev.cpu());
  }
  return j;
}

}  // namespace wan

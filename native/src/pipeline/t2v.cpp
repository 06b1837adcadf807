// T2VEngine::generate: encode (input video, prompts) → noise → flow-match sampling with CFG
// (one rank here, a device group in denoise.cpp) → VAE decode, with progress, cancel points and
// per-stage timings and memory peaks.
#include "pipeline/t2v.h"

#include <c10/core/GradMode.h>

#include <algorithm>

#include "common/cuda.h"
#include "formats/safetensors.h"
#include "models/latent_grid.h"
#include "pipeline/denoise.h"
#include "pipeline/fork.h"
#include "pipeline/noise.h"
#include "pipeline/run_stats.h"
#include "pipeline/stage_checks.h"
#include "pipeline/tea_cache.h"

namespace wan {

T2VResult T2VEngine::generate(const T2VRequest& r, const std::function<void(const T2VEvent&)>& progress,
                              const std::atomic<bool>* cancel) const {
  validate(r);
  use_loras(r);  // the request's LoRA working copies on the DiT (or the base model back)
  c10::NoGradGuard no_grad;
  auto report = [&](const char* stage, int64_t step, int64_t total, Clock::time_point t0,
                    const at::Tensor& latents = at::Tensor()) {
    if (!progress) return;
    double el = seconds_since(t0);
    progress({stage, step, total, el, step > 0 ? el / step * (total - step) : 0.0,
              latents});
  };
  T2VResult out;
  const bool cfg = r.cfg_scale != 1.0;
  const at::Device dev = dit_place_.device;
  // Peak bytes in live tensors per CUDA device and stage (the caching allocator's count): the
  // figures `wanlab inspect --budget` predicts.
  nlohmann::json stage_peaks = nlohmann::json::object();
  std::vector<at::Device> cuda_devices;  // the CUDA devices this request uses, each once
  for (const at::Device& d : {dev, t5_place_.device, vae_place_.device})
    if (d.is_cuda() && std::find(cuda_devices.begin(), cuda_devices.end(), d) == cuda_devices.end())
      cuda_devices.push_back(d);
  auto stage_start = [&] {
    for (const at::Device& d : cuda_devices) device_synchronize(d), reset_device_peak(d);
  };
  nlohmann::json reserved_peaks = nlohmann::json::object();  // the allocator's cache at its largest
  auto stage_end = [&](const char* stage) {
    for (const at::Device& d : cuda_devices) {
      device_synchronize(d);
      const DeviceMemory m = device_memory(d);
      stage_peaks[stage][d.str()] = m.peak_allocated;
      reserved_peaks[stage][d.str()] = m.peak_reserved;
    }
  };
  stage_start();

  // 1. the input video's latents (video-to-video; a follower node gets node 0's), then the
  //    prompts → embeddings [text_len, dim], zero past each prompt's length
  auto t_encode = Clock::now();
  const int prompts = cfg ? 2 : 1;
  int encode_total = prompts;  // and the video's chunks
  report("encode", 0, prompts, t_encode);
  at::Tensor input_latents = r.input_latents;  // [16, f, h, w] float32 on the CPU
  const bool resume = r.resume_from_step >= 0;  // a resumed run starts from its latents: no input to encode
  if (!input_latents.defined() && r.input_video.defined() && !resume) {
    const auto t_video = Clock::now();
    VaeEncodeOptions enc;
    enc.tiled = r.tiled;
    enc.tile_size = r.tile_size;
    enc.tile_stride = r.tile_stride;
    enc.progress = [&](int done, int total) {
      report("encode", done, encode_total = total + prompts, t_encode);
      if (done < total && cancel_set(cancel)) cancelled_in("encode", "input video chunk", "chunk", done + 1, total);
    };
    input_latents = vae_->encode(r.input_video.to(at::kFloat), enc);
    if (!all_finite(input_latents))
      fail("encoding the input video produced non-finite latents (NaN or Inf)", nonfinite_cause("VAE's"));
    out.timings["video_encode_s"] = seconds_since(t_video);
  }
  if (requests_ && node_rank_ == 0) publish(r, input_latents);  // nodes 1.. running follow() run it too
  int cached = 0;
  out.context = encode(r.prompt_ids, r.prompt_mask, cached, cancel);
  at::Tensor negative;
  if (cfg) negative = encode(r.negative_ids, r.negative_mask, cached, cancel).to(dev);
  const at::Tensor context = out.context.to(dev);  // [text_len, text_dim] float32, where the DiT runs
  report("encode", encode_total, encode_total, t_encode);
  out.timings["encode_s"] = seconds_since(t_encode);
  out.timings["encode_cached"] = cached;

  // 2. noise [1, z, f, h, w] exactly as DiffSynth draws it, then batch 1 dropped
  const LatentGrid g = latent_grid(r.num_frames, r.height, r.width);
  out.noise = initial_noise(r.seed, {1, model_.arch.vae.z_dim, g.frames, g.height, g.width}).squeeze(0);

  // 3. flow-match sampling with CFG
  FlowMatchSchedule sched = request_schedule(r);
  // Forked runs (pipeline/fork.h): steps [first, last) run here.
  const int64_t first = resume ? r.resume_from_step : 0, last = r.stop_at_step > 0 ? r.stop_at_step : sched.steps();
  // TeaCache: which steps skip the blocks depends on the timesteps alone, so it is decided here,
  // once, for both CFG branches and every rank.
  std::vector<bool> skips;
  if (r.tea_cache_l1_thresh > 0) {
    skips = tea_cache_skips(*dits_.front(), sched, r.tea_cache_l1_thresh, r.tea_cache_model_id);
    nlohmann::json skipped = nlohmann::json::array();
    for (size_t i = 0; i < skips.size(); ++i)
      if (skips[i]) skipped.push_back(i);
    out.timings["tea_cache_skipped_steps"] = skipped;
    if (resume) skips[size_t(first)] = false;  // no residual to reuse: the first resumed step runs the blocks
  }
  // float32 latents: the sampler's state stays in float32. Video-to-video: DiffSynth's add_noise,
  // (1 - sigma_0) * input latents + sigma_0 * noise.
  at::Tensor x = out.noise;
  if (resume) {
    x = r.resume_latents.to(at::kFloat);
    out.timings["resumed_from_step"] = first;
  } else if (input_latents.defined()) {
    const at::Tensor sigma = sched.sigmas[0];
    x = (1 - sigma) * input_latents + sigma * out.noise;
  }
  x = x.to(dev);
  stage_end("encode");
  stage_start();
  auto t_denoise = Clock::now();
  nlohmann::json step_s = nlohmann::json::array();
  report("denoise", first, sched.steps(), t_denoise);
  if (group_) {
    x = denoise_parallel(x, context, negative, r, sched, skips, first, last, step_s,
                         [&](int64_t done, const at::Tensor& xs) { report("denoise", done, sched.steps(), t_denoise, xs); }, cancel);
  } else {
    const int64_t steps = sched.steps();
    int64_t step = 0;  // 1-based, the step in progress
    DenoiseStep ds;
    ds.dit = dits_.front().get(), ds.sched = &sched;
    ds.context = context, ds.negative = negative, ds.cfg_scale = r.cfg_scale, ds.skips = skips;
    ds.in_block = [&](int64_t b, int64_t n) {
      if (cancel_set(cancel)) cancelled_in_step(step, steps, b + 1, n);
    };
    for (int64_t i = first; i < last; ++i) {
      step = i + 1;
      if (cancel_set(cancel)) cancelled_in_step(step, steps);
      auto t_step = Clock::now();
      x = denoise_step(ds, x, i);
      device_synchronize(dev);  // CUDA queues asynchronously: the step is done when the device is
      step_s.push_back(seconds_since(t_step));
      report("denoise", i + 1, steps, t_denoise, x);
    }
  }
  out.latents = x.to(at::kCPU);
  out.timings["denoise_s"] = seconds_since(t_denoise);
  out.timings["step_s"] = step_s;
  // Per rank (this node's): run_stats.h says what each figure is.
  if (group_) out.timings["ranks"] = rank_stats_json(*group_);
  if (last < sched.steps()) {  // stopped early: the latents and what a continuation needs, undecoded
    out.fork = fork_state(r, sched, last, out.latents.sizes().vec(), fingerprint_);
    out.timings["stopped_at_step"] = last;
    stage_end("denoise");
    if (!stage_peaks.empty()) out.timings["device_peak_bytes"] = stage_peaks;
    out.timings["placement"] = placement();
    return out;
  }

  // 4. decode
  if (cancel_set(cancel))
    throw Cancelled("decode", sched.steps(), sched.steps(), "", 0, 0,
                    concat("cancelled before decode, after step ", sched.steps(), "/", sched.steps()));
  stage_end("denoise");
  stage_start();
  auto t_decode = Clock::now();
  VaeDecodeOptions dec;
  dec.tiled = r.tiled;
  dec.tile_size = r.tile_size;
  dec.tile_stride = r.tile_stride;
  dec.progress = [&](int done, int total) {
    report("decode", done, total, t_decode);
    if (done < total && cancel_set(cancel)) cancelled_in("decode", "chunk", "chunk", done + 1, total);
  };
  out.video = vae_->decode(x, dec);
  if (!all_finite(out.video))
    fail("decoding produced non-finite values (NaN) in the video from finite latents", nonfinite_cause("VAE's"));
  out.timings["decode_s"] = seconds_since(t_decode);
  stage_end("decode");
  if (!stage_peaks.empty()) out.timings["device_peak_bytes"] = stage_peaks;
  if (!reserved_peaks.empty()) out.timings["device_peak_reserved_bytes"] = reserved_peaks;
  // The memory model's figures for the same stages and device (models/memory_model.h).
  const MemoryPlan plan = memory_plan(r);
  out.timings["predicted_peak_bytes"] = {{"encode", {{dev.str(), plan.encode()}}},
                                         {"denoise", {{dev.str(), plan.denoise()}}},
                                         {"decode", {{dev.str(), plan.decode()}}}};
  out.timings["placement"] = placement();
  return out;
}

at::Tensor T2VEngine::encode(const at::Tensor& ids, const at::Tensor& mask, int& cached,
                             const std::atomic<bool>* cancel) const {
  if (at::Tensor hit = prompt_cache_.find(ids, mask); hit.defined()) {
    ++cached;
    return hit;
  }
  auto before_layer = [&](int64_t l, int64_t n) {
    if (cancel_set(cancel)) cancelled_in("encode", "text encoder layer", "layer", l + 1, n);
  };
  at::Tensor e = t5_->encode_prompt(ids.unsqueeze(0), mask.unsqueeze(0), before_layer).squeeze(0).to(at::kCPU);
  if (!all_finite(e))  // not kept in the prompt cache either
    fail("the text encoder produced non-finite values (NaN or Inf) in the prompt embedding",
         nonfinite_cause("text encoder's"));
  prompt_cache_.put(ids, mask, e);
  return e;
}

void save_result_tensors(const std::string& path, const T2VResult& result, const T2VRequest& request) {
  TensorMap t;
  t["noise"] = stored(result.noise.to(at::kFloat).contiguous());
  t["context"] = stored(result.context.to(at::kFloat).contiguous());
  t["latents"] = stored(result.latents.to(at::kFloat).contiguous());
  if (result.video.defined()) t["video"] = stored(result.video.to(at::kFloat).contiguous());
  t["token_ids"] = stored(request.prompt_ids.to(at::kLong).contiguous());
  std::map<std::string, std::string> meta = {{"seed", std::to_string(request.seed)}, {"producer", "wanlab"}};
  if (!result.fork.is_null()) meta["wanlab.fork"] = result.fork.dump();  // what --resume reads (pipeline/fork.h)
  save_safetensors(path, t, meta);
}

}  // namespace wan

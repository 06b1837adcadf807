// End-to-end text-to-video on random real-size weights (no files): the whole pipeline as a user
// runs it (UMT5, `steps` denoising steps with CFG, VAE decode), timed per stage, with the device's
// peak memory, and the estimate of a full run against the FLOP bound:
//   full_s      = encode_s + full_steps x (median step_s, the first step left out) + decode_s
//   flop_bound  = (T5 FLOPs x prompts + full_steps x (cfg ? 2 : 1) x DiT FLOPs + VAE decode FLOPs)
//                 / the device's dense bf16 matmul rate, measured in the same command
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

struct PipelineBenchOptions {
  std::string dims = "1.3B";   // random weights: tiny | 1.3B | 14B
  std::string device = "cuda";
  std::string dtype;           // "": the device's default
  std::string t5_device;       // "": the DiT's device
  bool t5_offload = false;     // the text encoder's weights on the device only while encoding
  std::string attention = "auto";
  int64_t persistent_params = -1;
  int64_t memory_budget = -1;  // bytes per device; the engine plans for this bench's video (T2V ComputeOptions)
  bool dit_f8 = false;         // the DiT's block linears as float8 e4m3 (kept at 1 B, decoded per use)
  // Video-to-video from a synthetic input video (moving colour bands) at this denoising strength;
  // 0: text to video. Times the VAE encode and checks its predicted activations.
  double v2v_strength = 0;
  int frames = 81, height = 480, width = 832;
  int steps = 3, full_steps = 50;
  double cfg_scale = 5.0;
  bool tiled = false;
  uint64_t seed = 0;
  double peak_tflops = 0;      // 0: measure (8192^3 bf16 matmul) in this process
};

nlohmann::json bench_t2v(const PipelineBenchOptions& o);

}  // namespace wan

// The engine on a device and dtype against itself on the CPU in float32 (which matches DiffSynth,
// test/golden): the same weights and inputs through each component and a whole generation, the
// relative L2 error stated per component. `wanlab-engine parity DIR --device cuda:0` on a GPU;
// the tests run it with --device cpu --dtype bf16, which takes the same bf16 code path.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

struct ParityOptions {
  std::string device = "cuda";
  std::string dtype;  // "": the device's default
  int64_t persistent_params = -1;  // CUDA: also run the DiT with its blocks streamed from the host
  int height = 64, width = 64, frames = 9, steps = 2;
  double cfg_scale = 5.0;
  uint64_t seed = 42;
};

// {"t5": {...rel_l2}, "dit": ..., "vae": ..., "t2v_latents": ..., "t2v_video": ..., "placement": ...}
nlohmann::json device_parity(const std::string& model_dir, const ParityOptions& o);

}  // namespace wan

// Writes a random-weight Wan2.1 T2V model directory in one of the published layouts, with the
// release's file names, key names, dtypes and config files: the embedded default model, the
// test bed for every loader, and real-size checkpoints for load measurements.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace wan {

struct MakeModelOptions {
  // official | sharded (official, DiT in 3 shards) | diffusers | comfyui | comfyui-fp8 (ComfyUI's
  // scaled-fp8 repacks of the DiT and UMT5: block linears e4m3 with a scale_weight each)
  std::string layout = "official";
  std::string dims = "tiny";        // tiny | 1.3B | 14B
  uint64_t seed = 0;
  // Called before each file is written: (file name, fraction done by parameter count).
  std::function<void(const std::string&, double)> progress;
};

void make_model(const std::string& out_dir, const MakeModelOptions& opts);

}  // namespace wan

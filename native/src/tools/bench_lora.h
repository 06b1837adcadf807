// What a LoRA costs on a loaded engine (`wanlab-engine bench-lora DIR`): reading a LoRA file,
// switching to its working copies, switching back to the base and to another scale, against
// reopening the model, and the denoising step's time with and without it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

struct BenchLoraOptions {
  int64_t rank = 16;                           // of the random LoRA, on every block linear
  int64_t height = 64, width = 64, frames = 5;  // the video whose steps are timed
  int64_t steps = 4;                           // per timed generation (cfg 1)
  std::string devices = "cpu";
};

// {"model", "devices", "rank", "lora_file_bytes", "lora_weights", "working_bytes", "reload_s",
//  "parse_s", "switch_s", "rescale_s", "restore_s", "cached_s", "step_s_base", "step_s_lora",
//  "step_overhead", "lowrank_step_s_extra", "lowrank_step_overhead"}: seconds (medians of the
// steps), the overhead step_s_lora / step_s_base - 1 of the merged weights, and what the LoRA's
// terms would add to a step (cfg 1: one DiT pass) if applied beside the base weights instead.
nlohmann::json bench_lora(const std::string& dir, const BenchLoraOptions& o);

}  // namespace wan

// `wanlab inspect`: what a model directory holds and what it will cost per device.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

struct InspectOptions {
  std::string devices = "auto";  // device list (parallel/devices.h); auto: as a load would pick
  int ulysses = 0, ring = 0, cfg = 1;  // 0: chosen (all remaining ranks to Ulysses)
  int height = 480, width = 832, num_frames = 81;  // the video the memory estimate is for
  // The memory plan's options (models/memory_model.h).
  int64_t persistent_params = -1;  // DiT parameters kept on the device (-1: all)
  std::string t5_device;           // "cpu": the UMT5 off the device; "": on it
  bool t5_offload = false;         // the UMT5's weights on the device only while encoding
  bool tiled = false;              // tiled VAE decode
  bool shard_weights = false;      // DiT blocks sharded over the sequence-parallel ranks
  // > 0: the per-device budget in bytes (kAutoBudget: the first device's memory less a reserve,
  // read from this machine); the report says whether the plan fits and the largest
  // --persistent-params that does.
  int64_t budget_bytes = -1;
};

// The options as JSON, as the addon's inspect() and `wanlab-engine inspect` pass them: the video
// (height, width, numFrames, tiled: integers and a boolean), cfg (1, or 2 for CFG-parallel), and
// the engine options it shares with openEngine, decoded by engine_options_from_json
// (pipeline/engine_options.h): devices (default "auto" here), ulysses, ring, cfgParallel, budget,
// persistentParams, t5Device, t5Offload, shardWeights. Any other key, or a wrong type, throws
// ParamError naming the key.
InspectOptions inspect_options_from_json(const nlohmann::json& j);

// Layout, files, components (architecture, parameters, dtypes, bytes), tokenizer, and an
// estimate of peak memory per device. Validates the whole model like a load does (mmap, no copy).
nlohmann::json inspect_model(const std::string& dir, const InspectOptions& opts);

}  // namespace wan

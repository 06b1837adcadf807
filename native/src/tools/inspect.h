// `wanlab inspect`: what a model directory holds and what it will cost per device.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/engine_options.h"
#include "pipeline/request.h"

namespace wan {

struct InspectOptions {
  // The engine the estimate is for, as openEngine would open it (pipeline/engine_options.h):
  // devices (here "auto" by default: as a load would pick), the layout (ulysses, ring,
  // cfg_parallel; 0: chosen, all remaining ranks to Ulysses; or layout "auto": parallel/layout_auto.h,
  // the report's memory.layout_reason says why) and the memory plan's options
  // (persistent_params, t5_device, t5_offload, shard_weights). compute.memory_budget > 0 (or
  // kAutoBudget: the first device's memory less a reserve, read from this machine): the report
  // says whether the plan fits and the largest --persistent-params that does.
  EngineOptions engine;
  // The video the memory estimate is for.
  int height = 480, width = 832, num_frames = 81;
  bool tiled = false;  // tiled VAE decode
  // LoRAs the run would use (each file read and checked against the model): the report's
  // memory.dit_lora_bytes, counted in every peak and held to the budget.
  std::vector<T2VRequest::Lora> loras;

  InspectOptions() { engine.parallel.devices = "auto"; }
};

// The options as JSON, as the addon's inspect() and `wanlab-engine inspect` pass them: the video
// (height, width, numFrames, tiled: integers and a boolean), cfg (1, or 2 for CFG-parallel), and
// the engine options it shares with openEngine, decoded by engine_options_from_json
// (pipeline/engine_options.h): devices (default "auto" here), ulysses, ring, cfgParallel, layout
// ("auto"), budget, persistentParams, t5Device, t5Offload, shardWeights; loras as a request
// gives them ([{path, scale, strict}]). Any other key, or a wrong
// type, throws ParamError naming the key.
InspectOptions inspect_options_from_json(const nlohmann::json& j);

// Layout, files, components (architecture, parameters, dtypes, bytes), tokenizer, and an
// estimate of peak memory per device. Validates the whole model like a load does (mmap, no copy).
nlohmann::json inspect_model(const std::string& dir, const InspectOptions& opts);

}  // namespace wan

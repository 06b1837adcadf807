// `wanlab-engine generate DIR --request REQ.json`: one generation from a request file, for machines
// without Node (GPU boxes). The file holds the request's JSON (pipeline/request.h: token ids
// included, as the C++ CLI has no tokenizer; text-to-video only, an input video does not travel
// in it).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/engine_options.h"
#include "pipeline/t2v.h"

namespace wan {

struct GenerateFileOptions {
  std::string model_dir, request_path;
  EngineOptions engine;
  std::string save_tensors;  // "": none; else save_result_tensors (pipeline/t2v.h) there
  std::vector<double> timesteps;  // --timesteps: replaces the request's schedule (pipeline/flow_match.h listed_schedule)
  std::vector<T2VRequest::Lora> loras;  // --lora: added after the request's own (models/lora_merge.h)
  std::function<void(const T2VEvent&)> progress;
};

// Reads the request (at most 64 MiB of JSON; errors name the file and the key), opens the engine,
// validates and runs the request. Node 0 (one node: the only one) returns the run's timings (the
// T2VResult's) and ends the request stream of a multi-node group; nodes 1.. follow node 0's
// requests (the request file is not read there) and return {"followed": n, "failed": [{request,
// error}]}.
nlohmann::json generate_from_file(const GenerateFileOptions& o);

}  // namespace wan

#include "tools/generate_file.h"

#include <atomic>

#include "common/error.h"
#include "common/json_limits.h"
#include "pipeline/request.h"

namespace wan {

namespace {
// Four arrays of 1M token values at most (pipeline/json_fields.h kMaxJsonArray) and the scalars.
const JsonLimits kRequestJson{"request", 64ull << 20, 16, 5u << 20, true};
}  // namespace

nlohmann::json generate_from_file(const GenerateFileOptions& o) {
  if (o.engine.parallel.node_rank > 0) {
    T2VEngine engine(o.model_dir, o.engine.parallel, o.engine.compute);
    std::atomic<bool> stop{false};
    nlohmann::json failed = nlohmann::json::array();
    int64_t followed = 0;
    engine.follow(stop, [&](int64_t n, const std::string& error) {
      ++followed;
      if (!error.empty()) failed.push_back({{"request", n}, {"error", error}});
    });
    return {{"followed", followed}, {"failed", failed}};
  }
  T2VRequest request;
  try {
    request = request_from_json(read_json_file(o.request_path, kRequestJson));
  } catch (const ParamError& e) {
    throw ParamError(e.field, concat(o.request_path, ": ", e.what()));
  }
  if (!o.timesteps.empty()) request.timesteps = o.timesteps, request.num_inference_steps = int64_t(o.timesteps.size());
  request.loras.insert(request.loras.end(), o.loras.begin(), o.loras.end());
  T2VEngine engine(o.model_dir, o.engine.parallel, o.engine.compute);
  T2VResult result;
  try {
    engine.validate(request);
    result = engine.generate(request, o.progress);
  } catch (...) {
    engine.end_requests();  // followers stop instead of waiting for a request that will not come
    throw;
  }
  engine.end_requests();
  if (!o.save_tensors.empty()) save_result_tensors(o.save_tensors, result, request);
  return result.timings;
}

}  // namespace wan

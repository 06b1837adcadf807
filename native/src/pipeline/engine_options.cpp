#include "pipeline/engine_options.h"

#include <limits>

#include "common/error.h"
#include "common/json_limits.h"
#include "models/memory_model.h"
#include "pipeline/json_fields.h"

namespace wan {

using json = nlohmann::json;

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// `budget`: bytes (0 and up; the engine refuses 0) or "auto".
int64_t budget_of(const json& v) {
  if (v.is_string()) {
    if (v.get<std::string>() != "auto")
      throw ParamError("budget", concat("budget must be bytes or \"auto\", got ", json_describe(v)));
    return kAutoBudget;
  }
  if (!v.is_number()) throw ParamError("budget", concat("budget must be bytes or \"auto\", got ", json_describe(v)));
  return json_field_int(v, "budget", "budget", 0, kInt64Max);
}

ComputeOptions::BudgetVideo budget_video_of(const json& v) {
  check_json_keys(v, {"height", "width", "numFrames", "tiled"}, "budgetVideo");
  ComputeOptions::BudgetVideo b;
  for (const auto& item : v.items()) {
    const std::string& k = item.key();
    const std::string field = "budgetVideo." + k;
    if (k == "tiled") b.tiled = json_field_bool(item.value(), field, field);
    else {
      const int64_t x = json_field_int(item.value(), field, field, 0, kIntMax);
      (k == "height" ? b.height : k == "width" ? b.width : b.num_frames) = x;
    }
  }
  return b;
}

}  // namespace

EngineOptions engine_options_from_json(const json& j) {
  check_json_keys(j, {"devices", "ulysses", "ring", "cfgParallel", "layout", "transport", "timeoutS", "rendezvous", "nnodes", "nodeRank",
                      "logDir", "logLevel", "dtype", "t5Device", "t5Offload", "vaeDevice", "persistentParams",
                      "shardWeights", "budget", "budgetVideo", "promptCacheBytes"},
                  "engine options");
  EngineOptions o;
  ParallelOptions& p = o.parallel;
  ComputeOptions& c = o.compute;
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const json& v = item.value();
    auto str = [&](std::string& dst) { dst = json_field_string(v, k, k); };
    auto flag = [&](bool& dst) { dst = json_field_bool(v, k, k); };
    auto count = [&](int& dst) { dst = int(json_field_int(v, k, k, 0, kIntMax)); };
    if (k == "devices") str(p.devices);
    else if (k == "ulysses") count(p.ulysses);
    else if (k == "ring") count(p.ring);
    else if (k == "cfgParallel") flag(p.cfg_parallel);
    else if (k == "layout") str(p.layout);
    else if (k == "transport") str(p.transport);
    else if (k == "timeoutS") p.timeout_s = json_field_number(v, k, k);
    else if (k == "rendezvous") str(p.rendezvous);
    else if (k == "nnodes") count(p.nnodes);
    else if (k == "nodeRank") count(p.node_rank);
    else if (k == "logDir") str(p.log_dir);
    else if (k == "logLevel") str(p.log_level);
    else if (k == "dtype") str(c.dtype);
    else if (k == "t5Device") str(c.t5_device);
    else if (k == "t5Offload") flag(c.t5_offload);
    else if (k == "vaeDevice") str(c.vae_device);
    else if (k == "persistentParams") c.persistent_params = json_field_int(v, k, k, -1, kInt64Max);
    else if (k == "shardWeights") flag(c.shard_weights);
    else if (k == "budget") c.memory_budget = budget_of(v);
    else if (k == "budgetVideo") c.budget_video = budget_video_of(v);
    else if (k == "promptCacheBytes") c.prompt_cache_bytes = json_field_int(v, k, k, 0, kInt64Max);
  }
  return o;
}

}  // namespace wan

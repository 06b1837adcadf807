// pipeline/engine_options.h: openEngine's options decoded once, for the addon and wanlab-engine.
#include "common/error.h"
#include "models/memory_model.h"
#include "pipeline/engine_options.h"
#include "test.h"

using namespace wan;
using json = nlohmann::json;

namespace {
std::pair<std::string, std::string> param_error(const json& j) {
  try {
    engine_options_from_json(j);
  } catch (const ParamError& e) {
    return {e.field, e.what()};
  }
  throw wantest::Failure{"no ParamError for " + j.dump()};
}
}  // namespace

TEST(engine_options_json_decodes_every_key) {
  const EngineOptions o = engine_options_from_json(json::parse(R"({
    "devices": "cuda:0-3", "ulysses": 2, "ring": 1, "cfgParallel": true, "timeoutS": 12.5,
    "rendezvous": "tcp://10.0.0.1:29500", "nnodes": 2, "nodeRank": 1, "logDir": "/tmp/logs", "logLevel": "debug",
    "dtype": "bf16", "t5Device": "cpu", "t5Offload": true, "vaeDevice": "cuda:1", "persistentParams": 123456,
    "shardWeights": true, "budget": 24000000000, "promptCacheBytes": 1048576,
    "budgetVideo": {"height": 720, "width": 1280, "numFrames": 17, "tiled": true}})"));
  const ParallelOptions& p = o.parallel;
  const ComputeOptions& c = o.compute;
  EXPECT(p.devices == "cuda:0-3" && p.ulysses == 2 && p.ring == 1 && p.cfg_parallel && p.timeout_s == 12.5);
  EXPECT(p.rendezvous == "tcp://10.0.0.1:29500" && p.nnodes == 2 && p.node_rank == 1);
  EXPECT(p.log_dir == "/tmp/logs" && p.log_level == "debug");
  EXPECT(c.dtype == "bf16" && c.t5_device == "cpu" && c.t5_offload && c.vae_device == "cuda:1");
  EXPECT(c.persistent_params == 123456 && c.shard_weights && c.memory_budget == 24000000000LL);
  EXPECT(c.prompt_cache_bytes == 1048576);
  EXPECT(c.budget_video.height == 720 && c.budget_video.width == 1280 && c.budget_video.num_frames == 17 &&
         c.budget_video.tiled);
}

TEST(engine_options_json_absent_keys_keep_the_defaults) {
  const EngineOptions o = engine_options_from_json(json::object()), d;
  EXPECT(o.parallel.devices == d.parallel.devices && o.parallel.timeout_s == d.parallel.timeout_s);
  EXPECT(o.compute.memory_budget == -1 && o.compute.persistent_params == -1);
  EXPECT(o.compute.prompt_cache_bytes == d.compute.prompt_cache_bytes && o.compute.budget_video.num_frames == 81);
  const EngineOptions v = engine_options_from_json(json{{"budgetVideo", {{"tiled", true}}}});
  EXPECT(v.compute.budget_video.tiled && v.compute.budget_video.height == 480);
}

TEST(engine_options_json_budget_is_bytes_or_auto) {
  EXPECT(engine_options_from_json(json{{"budget", "auto"}}).compute.memory_budget == kAutoBudget);
  EXPECT(engine_options_from_json(json{{"budget", 7000000000LL}}).compute.memory_budget == 7000000000LL);
  for (const json& bad : {json("24G"), json(-5), json(1.5), json(true)}) {
    const auto [field, what] = param_error(json{{"budget", bad}});
    EXPECT(field == "budget" && what.find("budget must be") != std::string::npos);
  }
}

TEST(engine_options_json_refuses_unknown_key_naming_it) {
  const auto [field, what] = param_error(json{{"device", "cpu"}});
  EXPECT(field == "device" && what.find("unknown engine options key 'device'") != std::string::npos);
  EXPECT(param_error(json{{"budgetVideo", {{"frames", 9}}}}).first == "frames");
  EXPECT(param_error(json::array()).first == "engine options");
}

TEST(engine_options_json_refuses_wrong_types_naming_the_key) {
  EXPECT((param_error(json{{"ulysses", "2"}}) ==
          std::pair<std::string, std::string>{"ulysses", "ulysses must be an integer from 0 to 2147483647, got the string \"2\""}));
  EXPECT(param_error(json{{"cfgParallel", 1}}).second == "cfgParallel must be a boolean, got the number 1");
  EXPECT(param_error(json{{"devices", 0}}).first == "devices");
  EXPECT(param_error(json{{"timeoutS", "60"}}).first == "timeoutS");
  EXPECT(param_error(json{{"persistentParams", -2}}).first == "persistentParams");
  EXPECT(param_error(json{{"budgetVideo", {{"height", 4.5}}}}).first == "budgetVideo.height");
  EXPECT(param_error(json{{"budgetVideo", 480}}).first == "budgetVideo");
}

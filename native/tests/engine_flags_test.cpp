// tools/engine_flags.h: wanlab-engine's engine flags become the JSON the addon's decoders read.
#include "models/memory_model.h"
#include "pipeline/engine_options.h"
#include "test.h"
#include "tools/engine_flags.h"
#include "tools/inspect.h"

using namespace wan;

TEST(engine_flags_become_the_options_json_openengine_takes) {
  std::vector<std::string> all;
  for (const EngineFlag& f : engine_flags()) all.push_back(f.flag);
  const std::map<std::string, std::string> given = {
      {"--devices", "cuda:0-1"}, {"--ulysses", "2"}, {"--cfg-parallel", ""}, {"--timeout", "12.5"},
      {"--persistent-params", "7G"}, {"--budget", "auto"}, {"--budget-frames", "17"}, {"--budget-tiled", ""},
      {"--prompt-cache-bytes", "1M"}};
  const nlohmann::json j = flags_to_json(given, all);
  EXPECT(j == nlohmann::json::parse(R"({"devices": "cuda:0-1", "ulysses": 2, "cfgParallel": true, "timeoutS": 12.5,
    "persistentParams": 7000000000, "budget": "auto", "budgetVideo": {"numFrames": 17, "tiled": true},
    "promptCacheBytes": 1000000})"));
  const EngineOptions o = engine_options_from_json(j);
  EXPECT(o.parallel.ulysses == 2 && o.compute.memory_budget == kAutoBudget && o.compute.budget_video.num_frames == 17);
}

TEST(engine_flags_refuse_values_of_the_wrong_kind_naming_the_flag) {
  EXPECT_ERROR(flags_to_json({{"--ulysses", "two"}}, {"--ulysses"}), "option --ulysses must be an integer, got 'two'");
  EXPECT_ERROR(flags_to_json({{"--budget", "lots"}}, {"--budget"}), "option --budget must be bytes", "got 'lots'");
  EXPECT_ERROR(flags_to_json({{"--timeout", "soon"}}, {"--timeout"}), "option --timeout must be a number");
  EXPECT(flag_of_key("budgetVideo.height") == "--budget-height" && flag_of_key("t5Device") == "--t5-device");
}

TEST(engine_flags_usage_lists_each_flag_of_a_command_with_its_value) {
  const std::string u = flags_usage({"--devices", "--cfg-parallel", "--budget"}, 4);
  EXPECT(u == "[--devices LIST] [--cfg-parallel] [--budget BYTES|auto]");
  std::vector<std::string> all;
  for (const EngineFlag& f : engine_flags()) all.push_back(f.flag);
  const std::string wrapped = flags_usage(all, 14, 60);
  size_t start = 0;
  for (size_t nl = wrapped.find('\n'); nl != std::string::npos; start = nl + 1, nl = wrapped.find('\n', start))
    EXPECT(nl - start <= 60);
  for (const EngineFlag& f : engine_flags()) EXPECT(wrapped.find(std::string("[") + f.flag) != std::string::npos);
}

TEST(inspect_flags_decode_through_the_engine_options_decoder) {
  const InspectOptions o = inspect_options_from_json(flags_to_json(
      {{"--height", "32"}, {"--cfg-parallel", ""}, {"--budget", "24G"}, {"--tiled", ""}, {"--t5-device", "cpu"}},
      {"--height", "--cfg-parallel", "--budget", "--tiled", "--t5-device"}));
  EXPECT(o.height == 32 && o.engine.parallel.cfg_parallel && o.engine.compute.memory_budget == 24000000000LL &&
         o.tiled && o.engine.compute.t5_device == "cpu");
  EXPECT(o.engine.parallel.devices == "auto");  // inspect's default: as a load would pick
  EXPECT_ERROR(inspect_options_from_json({{"dtype", "bf16"}}), "unknown inspect option 'dtype'");
}

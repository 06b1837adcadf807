#include "tools/engine_flags.h"

#include <cmath>

namespace wan {

using json = nlohmann::json;

const std::vector<EngineFlag>& engine_flags() {
  using F = EngineFlag;
  static const std::vector<EngineFlag> flags = {
      {"--devices", "devices", F::kString, "LIST"},
      {"--ulysses", "ulysses", F::kInt, "N"},
      {"--ring", "ring", F::kInt, "N"},
      {"--cfg-parallel", "cfgParallel", F::kSwitch, ""},
      {"--layout", "layout", F::kString, "auto"},
      {"--transport", "transport", F::kString, "gloo|nccl"},
      {"--timeout", "timeoutS", F::kNumber, "S"},
      {"--rendezvous", "rendezvous", F::kString, "tcp://HOST:PORT"},
      {"--nnodes", "nnodes", F::kInt, "N"},
      {"--node-rank", "nodeRank", F::kInt, "K"},
      {"--log-dir", "logDir", F::kString, "DIR"},
      {"--log-level", "logLevel", F::kString, "error|warn|info|debug"},
      {"--height", "height", F::kInt, "N"},
      {"--width", "width", F::kInt, "N"},
      {"--num-frames", "numFrames", F::kInt, "N"},
      {"--dtype", "dtype", F::kString, "f32|bf16|f16"},
      {"--budget", "budget", F::kBudget, "BYTES|auto"},
      {"--budget-height", "budgetVideo.height", F::kInt, "N"},
      {"--budget-width", "budgetVideo.width", F::kInt, "N"},
      {"--budget-frames", "budgetVideo.numFrames", F::kInt, "N"},
      {"--budget-tiled", "budgetVideo.tiled", F::kSwitch, ""},
      {"--persistent-params", "persistentParams", F::kCount, "N"},
      {"--t5-device", "t5Device", F::kString, "cpu|cuda:N"},
      {"--t5-offload", "t5Offload", F::kSwitch, ""},
      {"--vae-device", "vaeDevice", F::kString, "cpu|cuda:N"},
      {"--tiled", "tiled", F::kSwitch, ""},
      {"--shard-weights", "shardWeights", F::kSwitch, ""},
      {"--prompt-cache-bytes", "promptCacheBytes", F::kCount, "N"},
  };
  return flags;
}

namespace {
const EngineFlag& flag_named(const std::string& name) {
  for (const EngineFlag& f : engine_flags())
    if (name == f.flag) return f;
  throw Error(concat("no engine flag ", name));  // a command's list names a flag the table lacks
}
}  // namespace

std::vector<std::string> switch_flags(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& n : names)
    if (flag_named(n).kind == EngineFlag::kSwitch) out.push_back(n);
  return out;
}

std::string flag_of_key(const std::string& key) {
  for (const EngineFlag& f : engine_flags())
    if (key == f.key) return f.flag;
  return key;
}

int parse_int_flag(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const int v = std::stoi(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  throw FlagError(concat("option ", flag, " must be an integer, got '", value, "'"));
}

double parse_number_flag(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw FlagError(concat("option ", flag, " must be a number, got '", value, "'"));
}

int64_t parse_count_flag(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    double v = std::stod(value, &used);
    const std::string suffix = value.substr(used);
    if (suffix == "K" || suffix == "k") v *= 1e3;
    else if (suffix == "M") v *= 1e6;
    else if (suffix == "G" || suffix == "B") v *= 1e9;
    else if (!suffix.empty()) throw std::invalid_argument("");
    if (v >= 0 && v <= 1e15) return static_cast<int64_t>(v);
  } catch (const std::exception&) {
  }
  throw FlagError(concat("option ", flag, " must be a parameter count >= 0 (e.g. 7000000000, 7e9, 7G), got '", value, "'"));
}

json flags_to_json(const std::map<std::string, std::string>& given, const std::vector<std::string>& names) {
  json out = json::object();
  for (const std::string& name : names) {
    const auto it = given.find(name);
    if (it == given.end()) continue;
    const EngineFlag& f = flag_named(name);
    const std::string& v = it->second;
    json value;
    switch (f.kind) {
      case EngineFlag::kString: value = v; break;
      case EngineFlag::kInt: value = parse_int_flag(name, v); break;
      case EngineFlag::kNumber: value = parse_number_flag(name, v); break;
      case EngineFlag::kSwitch: value = true; break;
      case EngineFlag::kCount: value = parse_count_flag(name, v); break;
      case EngineFlag::kBudget:
        try {
          value = v == "auto" ? json("auto") : json(parse_count_flag(name, v));
        } catch (const FlagError&) {
          throw FlagError(concat("option ", name, " must be bytes (e.g. 24000000000, 24e9, 24G) or auto, got '", v, "'"));
        }
        break;
    }
    const std::string key = f.key;
    const size_t dot = key.find('.');
    if (dot == std::string::npos) out[key] = value;
    else out[key.substr(0, dot)][key.substr(dot + 1)] = value;
  }
  return out;
}

std::string flags_usage(const std::vector<std::string>& names, size_t indent, size_t width) {
  std::string out, line;
  for (const std::string& name : names) {
    const EngineFlag& f = flag_named(name);
    const std::string item = concat("[", f.flag, *f.value ? " " : "", f.value, "]");
    if (!line.empty() && indent + line.size() + 1 + item.size() > width) {
      out += line + "\n" + std::string(indent, ' ');
      line.clear();
    }
    line += (line.empty() ? "" : " ") + item;
  }
  return out + line;
}

}  // namespace wan

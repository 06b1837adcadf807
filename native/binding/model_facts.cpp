#include "model_facts.h"

#include <string>

#include "checkpoint/arch.h"
#include "models/latent_grid.h"
#include "models/memory_model.h"
#include "parallel/ulysses.h"

namespace wanjs {

Napi::Value ModelConstants(const Napi::CallbackInfo& info) {
  nlohmann::json presets = nlohmann::json::object();
  for (const char* name : {"tiny", "1.3B", "14B"}) {
    const wan::ModelArch a = wan::preset_arch(name);
    presets[name] = {{"dit", wan::to_json(a.dit)}, {"t5", wan::to_json(a.t5)}, {"vae", wan::to_json(a.vae)}};
  }
  const nlohmann::json j = {{"presets", presets}, {"vaeStride", wan::kVaeStride}, {"patch", wan::DitArch{}.patch}};
  return Napi::String::New(info.Env(), j.dump());
}

namespace {
int64_t positive_int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info.Length() > i ? info[i] : info.Env().Undefined();
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
  if (!v.IsNumber() || !(d >= 1 && d <= 1e9) || d != double(int64_t(d)))
    throw Napi::TypeError::New(info.Env(), std::string("ditFacts: ") + name + " must be an integer >= 1");
  return int64_t(d);
}
int64_t dims_int(const Napi::Env& env, const nlohmann::json& dit, const char* key) {
  const auto it = dit.find(key);
  if (it == dit.end() || !it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > (int64_t(1) << 31))
    throw Napi::TypeError::New(env, std::string("ditFacts: dit.") + key + " must be a positive integer");
  return it->get<int64_t>();
}
}  // namespace

Napi::Value DitFacts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "ditFacts: dit must be a JSON string");
  const nlohmann::json dit = nlohmann::json::parse(info[0].As<Napi::String>().Utf8Value(), nullptr, false);
  if (!dit.is_object()) throw Napi::TypeError::New(env, "ditFacts: dit must be a JSON object");
  wan::DitArch a;
  a.dim = dims_int(env, dit, "dim"), a.ffn_dim = dims_int(env, dit, "ffn_dim"), a.num_heads = dims_int(env, dit, "num_heads");
  const int64_t sp = positive_int(info, 1, "sp"), ulysses = positive_int(info, 2, "ulysses");
  const int64_t e = positive_int(info, 3, "bytesPerElement");
  const wan::BlockParams p = wan::dit_block_params(a);
  nlohmann::json parts = nlohmann::json::array();
  for (const wan::ShardPart& s : wan::dit_shard_parts(a, sp, e))
    parts.push_back({{"elements", s.elements}, {"bytesPerElement", s.bytes_per_element}});
  const int64_t groups = ulysses <= 1 ? 1 : wan::ulysses_head_groups(a.num_heads / ulysses);
  const nlohmann::json j = {{"blockParams", {{"total", p.total}, {"float32", p.float32}}},
                            {"shardParts", parts},
                            {"ulyssesHeadGroups", groups}};
  return Napi::String::New(env, j.dump());
}

}  // namespace wanjs

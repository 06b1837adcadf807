#include "model_facts.h"

#include <string>

#include "checkpoint/arch.h"
#include "common/error.h"
#include "common/json_limits.h"
#include "convert.h"
#include "models/latent_grid.h"
#include "models/memory_model.h"
#include "parallel/ulysses.h"
#include "pipeline/json_fields.h"

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

namespace {
using nlohmann::json;
constexpr int64_t kMaxDim = int64_t(1) << 20;  // any dimension of a model
constexpr int64_t kMaxLayers = 1024;

// An arch part's integer `key` in [1, hi]; field "arch.<part>.<key>".
int64_t arch_int(const json& part, const std::string& name, const char* key, int64_t hi = kMaxDim) {
  const std::string field = "arch." + name + "." + key;
  if (!part.contains(key)) throw wan::ParamError(field, wan::concat(field, " is missing"));
  return wan::json_field_int(part[key], field, field, 1, hi);
}

const json& arch_part(const json& a, const char* name) {
  const std::string field = std::string("arch.") + name;
  if (!a.contains(name) || !a[name].is_object())
    throw wan::ParamError(field, wan::concat(field, " must be an object (as info() gives it), got ",
                                             a.contains(name) ? wan::json_describe(a[name]) : "nothing"));
  return a[name];
}

wan::ModelArch arch_of(const std::string& text) {
  if (text.empty() || text[0] != '{') {
    try {
      return wan::preset_arch(text);
    } catch (const std::exception& e) {
      throw wan::ParamError("arch", e.what());
    }
  }
  const json a = json::parse(text, nullptr, false);
  if (!a.is_object()) throw wan::ParamError("arch", "memoryPlan: arch must be a preset name or the JSON of {dit, t5, vae}");
  wan::ModelArch m;
  const json& d = arch_part(a, "dit");
  m.dit.dim = arch_int(d, "dit", "dim"), m.dit.ffn_dim = arch_int(d, "dit", "ffn_dim");
  m.dit.freq_dim = arch_int(d, "dit", "freq_dim"), m.dit.text_dim = arch_int(d, "dit", "text_dim");
  m.dit.in_dim = arch_int(d, "dit", "in_dim"), m.dit.out_dim = arch_int(d, "dit", "out_dim");
  m.dit.num_heads = arch_int(d, "dit", "num_heads"), m.dit.num_layers = arch_int(d, "dit", "num_layers", kMaxLayers);
  m.dit.text_len = arch_int(d, "dit", "text_len", wan::kMaxTextLen);
  if (!d.contains("patch_size")) throw wan::ParamError("arch.dit.patch_size", "arch.dit.patch_size is missing");
  const std::vector<int64_t> patch = wan::json_field_ints(d["patch_size"], "arch.dit.patch_size", "arch.dit.patch_size", 3, 1, 64);
  if (patch.size() != 3) throw wan::ParamError("arch.dit.patch_size", "arch.dit.patch_size must be 3 integers (t, h, w)");
  m.dit.patch = {patch[0], patch[1], patch[2]};
  const json& t = arch_part(a, "t5");
  m.t5.vocab = arch_int(t, "t5", "vocab", int64_t(1) << 24), m.t5.dim = arch_int(t, "t5", "dim");
  m.t5.dim_attn = arch_int(t, "t5", "dim_attn"), m.t5.dim_ffn = arch_int(t, "t5", "dim_ffn");
  m.t5.num_heads = arch_int(t, "t5", "num_heads"), m.t5.num_layers = arch_int(t, "t5", "num_layers", kMaxLayers);
  m.t5.num_buckets = arch_int(t, "t5", "num_buckets");
  if (t.contains("shared_pos")) m.t5.shared_pos = wan::json_field_bool(t["shared_pos"], "arch.t5.shared_pos", "arch.t5.shared_pos");
  const json& v = arch_part(a, "vae");
  m.vae.dim = arch_int(v, "vae", "dim"), m.vae.z_dim = arch_int(v, "vae", "z_dim");
  m.vae.num_res_blocks = arch_int(v, "vae", "num_res_blocks", 64);
  if (!v.contains("dim_mult")) throw wan::ParamError("arch.vae.dim_mult", "arch.vae.dim_mult is missing");
  m.vae.dim_mult = wan::json_field_ints(v["dim_mult"], "arch.vae.dim_mult", "arch.vae.dim_mult", 16, 1, 64);
  const json td = v.value("temporal_downsample", json());
  if (m.vae.dim_mult.empty() || !td.is_array() || td.size() + 1 != m.vae.dim_mult.size())
    throw wan::ParamError("arch.vae", "arch.vae needs dim_mult (1 to 16 levels) and temporal_downsample (one boolean per level after the first)");
  for (size_t i = 0; i < td.size(); ++i)
    m.vae.temporal_downsample.push_back(wan::json_field_bool(td[i], wan::concat("arch.vae.temporal_downsample[", i, "]"),
                                                             "arch.vae.temporal_downsample"));
  return m;
}

wan::MemoryPlanOptions plan_options_of(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) throw wan::ParamError("options", "memoryPlan: options must be the JSON of an object");
  wan::check_json_keys(j, {"height", "width", "numFrames", "sequenceParallel", "persistentParams", "shardWeights", "t5OnDevice",
                           "t5Offload", "vaeOnDevice", "tiled", "tileH", "tileW", "bytesPerValue", "gpu", "ditF8",
                           "blockResiduals", "encodeVideo", "ranksOnDevice"},
                       "memory plan options");
  wan::MemoryPlanOptions o;
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const json& x = item.value();
    auto count = [&](int& dst, int64_t lo, int64_t hi) { dst = int(wan::json_field_int(x, k, k, lo, hi)); };
    auto flag = [&](bool& dst) { dst = wan::json_field_bool(x, k, k); };
    if (k == "height") count(o.height, 1, 1 << 16);
    else if (k == "width") count(o.width, 1, 1 << 16);
    else if (k == "numFrames") count(o.num_frames, 1, 1001);
    else if (k == "sequenceParallel") count(o.sequence_parallel, 1, 1 << 16);
    else if (k == "persistentParams") o.persistent_params = wan::json_field_int(x, k, k, -1);
    else if (k == "shardWeights") flag(o.shard_weights);
    else if (k == "t5OnDevice") flag(o.t5_on_device);
    else if (k == "t5Offload") flag(o.t5_offload);
    else if (k == "vaeOnDevice") flag(o.vae_on_device);
    else if (k == "tiled") flag(o.tiled);
    else if (k == "tileH") count(o.tile_h, 1, 1 << 16);
    else if (k == "tileW") count(o.tile_w, 1, 1 << 16);
    else if (k == "bytesPerValue") {
      count(o.bytes_per_value, 2, 4);
      if (o.bytes_per_value == 3) throw wan::ParamError(k, "bytesPerValue must be 2 (bf16/f16) or 4 (float32), got 3");
    }
    else if (k == "gpu") flag(o.gpu);
    else if (k == "ditF8") flag(o.dit_f8);
    else if (k == "blockResiduals") count(o.block_residuals, 0, 2);
    else if (k == "encodeVideo") flag(o.encode_video);
    else if (k == "ranksOnDevice") count(o.ranks_on_device, 1, 1 << 16);
  }
  if (!wan::valid_frame_count(o.num_frames))
    throw wan::ParamError("numFrames", wan::concat("numFrames must be 4k+1 (1, 5, 9, ..., 81), got ", o.num_frames));
  return o;
}
}  // namespace

Napi::Value MemoryPlanOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string arch = string_arg(info, 0, "arch"), options = string_arg(info, 1, "options");
  return Napi::String::New(
      env, engine_call(env, [&] { return wan::to_json(wan::plan_memory(arch_of(arch), plan_options_of(options))).dump(); }));
}

}  // namespace wanjs

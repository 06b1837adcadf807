#include "pipeline/request.h"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <vector>

#include "common/error.h"
#include "common/json_limits.h"
#include "pipeline/flow_match.h"
#include "pipeline/json_fields.h"

namespace wan {

using json = nlohmann::json;

namespace {

// Each key and the engine's name of its field (ParamError::field, snake_case as validate() names it).
struct Key {
  const char* key;
  const char* field;
};
constexpr Key kKeys[] = {
    {"promptIds", "prompt"}, {"promptMask", "prompt"}, {"negativeIds", "negative_prompt"},
    {"negativeMask", "negative_prompt"}, {"seed", "seed"}, {"height", "height"}, {"width", "width"},
    {"numFrames", "num_frames"}, {"numInferenceSteps", "num_inference_steps"}, {"cfgScale", "cfg_scale"},
    {"sigmaShift", "sigma_shift"}, {"tiled", "tiled"}, {"tileSize", "tile_size"}, {"tileStride", "tile_stride"},
    {"teaCacheL1Thresh", "tea_cache_l1_thresh"}, {"teaCacheModelId", "tea_cache_model_id"},
    {"denoisingStrength", "denoising_strength"},
    {"timesteps", "timesteps"}, {"stopAtStep", "stop_at_step"}, {"resumeFromStep", "resume"}, {"resumeModel", "resume"},
    {"resumeSigmas", "resume"}, {"loras", "loras"},
};

const char* field_of(const std::string& key) {
  for (const Key& k : kKeys)
    if (key == k.key) return k.field;
  return "request";
}

std::vector<int64_t> int_list(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

at::Tensor ids_tensor(const json& j, const char* key, int64_t lo, int64_t hi) {
  const std::vector<int64_t> v = json_field_ints(j.at(key), key, field_of(key), kMaxJsonArray, lo, hi);
  return at::tensor(v, at::kLong);
}

// A seed from 0 to 2^64-1: a decimal string (what request_to_json writes, as a uint64 does not
// fit a double) or a non-negative integral number.
uint64_t seed_of(const json& v) {
  const char* range = "seed must be an integer from 0 to 2^64-1";
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) throw ParamError("seed", concat(range, ", got ", json_describe(v)));
    return uint64_t(v.get<int64_t>());
  }
  if (!v.is_string()) throw ParamError("seed", concat(range, " (a decimal string or a number), got ", json_describe(v)));
  const std::string s = v.get<std::string>();
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos)
    throw ParamError("seed", concat(range, ", got '", s.substr(0, 40), "'"));
  errno = 0;
  const unsigned long long r = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) throw ParamError("seed", concat(range, ", got ", s));
  return r;
}

// An array of at most `max_len` finite numbers.
std::vector<double> numbers_of(const json& v, const char* key, size_t max_len) {
  if (!v.is_array() || v.size() > max_len)
    throw ParamError(field_of(key), concat(key, " must be an array of at most ", max_len, " numbers, got ", json_describe(v)));
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(json_field_number(v[i], concat(key, "[", i, "]"), field_of(key)));
  return out;
}

std::array<int64_t, 2> pair_of(const json& v, const char* key) {
  if (!v.is_array() || v.size() != 2)
    throw ParamError(field_of(key), concat(key, " must be [height, width] in latent units, got ", json_describe(v)));
  const std::vector<int64_t> p = json_field_ints(v, key, field_of(key), 2);
  return {p[0], p[1]};
}

}  // namespace

json request_to_json(const T2VRequest& r) {
  json j = {{"seed", std::to_string(r.seed)},
            {"height", r.height},
            {"width", r.width},
            {"numFrames", r.num_frames},
            {"numInferenceSteps", r.num_inference_steps},
            {"cfgScale", r.cfg_scale},
            {"sigmaShift", r.sigma_shift},
            {"tiled", r.tiled},
            {"tileSize", r.tile_size},
            {"tileStride", r.tile_stride},
            {"teaCacheL1Thresh", r.tea_cache_l1_thresh},
            {"teaCacheModelId", r.tea_cache_model_id},
            {"denoisingStrength", r.denoising_strength}};
  if (r.prompt_ids.defined()) j["promptIds"] = int_list(r.prompt_ids);
  if (r.prompt_mask.defined()) j["promptMask"] = int_list(r.prompt_mask);
  if (r.negative_ids.defined()) j["negativeIds"] = int_list(r.negative_ids);
  if (r.negative_mask.defined()) j["negativeMask"] = int_list(r.negative_mask);
  if (!r.timesteps.empty()) j["timesteps"] = r.timesteps;
  if (r.stop_at_step != 0) j["stopAtStep"] = r.stop_at_step;
  if (r.resume_from_step >= 0) {
    j["resumeFromStep"] = r.resume_from_step;
    if (!r.resume_model.empty()) j["resumeModel"] = r.resume_model;
    if (!r.resume_sigmas.empty()) j["resumeSigmas"] = r.resume_sigmas;
  }
  if (!r.loras.empty()) {
    j["loras"] = json::array();
    for (const T2VRequest::Lora& l : r.loras) j["loras"].push_back({{"path", l.path}, {"scale", l.scale}, {"strict", l.strict}});
  }
  return j;
}

namespace {
// "loras": an array of at most 16 {path, scale?, strict?} objects.
std::vector<T2VRequest::Lora> loras_of(const json& v) {
  if (!v.is_array() || v.size() > 16)
    throw ParamError("loras", concat("loras must be an array of at most 16 {path, scale, strict} objects, got ",
                                     json_describe(v)));
  std::vector<T2VRequest::Lora> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = concat("loras[", i, "]");
    if (!v[i].is_object()) throw ParamError("loras", concat(at, " must be an object {path, scale, strict}, got ", json_describe(v[i])));
    check_json_keys(v[i], {"path", "scale", "strict"}, "LoRA");
    if (!v[i].contains("path")) throw ParamError("loras", concat(at, " has no path"));
    T2VRequest::Lora l;
    l.path = json_field_string(v[i]["path"], at + ".path", "loras");
    if (l.path.empty()) throw ParamError("loras", concat(at, ".path is empty"));
    if (v[i].contains("scale")) l.scale = json_field_number(v[i]["scale"], at + ".scale", "loras");
    if (v[i].contains("strict")) l.strict = json_field_bool(v[i]["strict"], at + ".strict", "loras");
    out.push_back(l);
  }
  return out;
}
}  // namespace

T2VRequest request_from_json(const json& j, bool need_prompt) {
  static const std::vector<const char*> known = [] {
    std::vector<const char*> k;
    for (const Key& key : kKeys) k.push_back(key.key);
    return k;
  }();
  check_json_keys(j, known, "request");
  T2VRequest r;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  auto has = [&](const char* key) { return j.contains(key); };
  auto int_of = [&](const char* key, int64_t& dst) {
    if (has(key)) dst = json_field_int(j[key], key, field_of(key));
  };
  auto number_of = [&](const char* key, double& dst) {
    if (has(key)) dst = json_field_number(j[key], key, field_of(key));
  };
  for (const char* key : {"promptIds", "promptMask"})
    if (need_prompt && !has(key)) throw ParamError("prompt", concat("the request has no ", key, " (the tokenized prompt)"));
  if (has("promptIds")) r.prompt_ids = ids_tensor(j, "promptIds", kMin, kMax);
  if (has("promptMask")) r.prompt_mask = ids_tensor(j, "promptMask", 0, 1);
  if (has("negativeIds") != has("negativeMask"))
    throw ParamError("negative_prompt", "the request has one of negativeIds and negativeMask without the other");
  if (has("negativeIds")) r.negative_ids = ids_tensor(j, "negativeIds", kMin, kMax);
  if (has("negativeMask")) r.negative_mask = ids_tensor(j, "negativeMask", 0, 1);
  if (has("seed")) r.seed = seed_of(j["seed"]);
  int_of("height", r.height);
  int_of("width", r.width);
  int_of("numFrames", r.num_frames);
  int_of("numInferenceSteps", r.num_inference_steps);
  number_of("cfgScale", r.cfg_scale);
  number_of("sigmaShift", r.sigma_shift);
  if (has("tiled")) r.tiled = json_field_bool(j["tiled"], "tiled", "tiled");
  if (has("tileSize")) r.tile_size = pair_of(j["tileSize"], "tileSize");
  if (has("tileStride")) r.tile_stride = pair_of(j["tileStride"], "tileStride");
  number_of("teaCacheL1Thresh", r.tea_cache_l1_thresh);
  if (has("teaCacheModelId")) r.tea_cache_model_id = json_field_string(j["teaCacheModelId"], "teaCacheModelId", "tea_cache_model_id");
  number_of("denoisingStrength", r.denoising_strength);
  // A timestep list sets the number of steps; a numInferenceSteps beside it must agree.
  if (has("timesteps")) {
    r.timesteps = numbers_of(j["timesteps"], "timesteps", kMaxTimesteps);
    if (has("numInferenceSteps") && r.num_inference_steps != int64_t(r.timesteps.size()))
      throw ParamError("timesteps", concat("timesteps lists ", r.timesteps.size(), " steps but numInferenceSteps is ",
                                           r.num_inference_steps, "; give one of them"));
    r.num_inference_steps = int64_t(r.timesteps.size());
  }
  int_of("stopAtStep", r.stop_at_step);
  if (has("resumeModel") || has("resumeSigmas"))
    if (!has("resumeFromStep")) throw ParamError("resume", "resumeModel and resumeSigmas need resumeFromStep");
  if (has("resumeFromStep")) r.resume_from_step = json_field_int(j["resumeFromStep"], "resumeFromStep", "resume", 0, kMax);
  if (has("resumeModel")) r.resume_model = json_field_string(j["resumeModel"], "resumeModel", "resume");
  if (has("resumeSigmas")) r.resume_sigmas = numbers_of(j["resumeSigmas"], "resumeSigmas", kMaxTimesteps);
  if (has("loras")) r.loras = loras_of(j["loras"]);
  return r;
}

}  // namespace wan

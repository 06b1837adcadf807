// pipeline/request.h: the request's one JSON form, strict in what it accepts.
#include <limits>

#include "common/error.h"
#include "pipeline/json_fields.h"
#include "pipeline/request.h"
#include "test.h"

using namespace wan;
using json = nlohmann::json;

namespace {

T2VRequest every_field_set() {
  T2VRequest r;
  r.prompt_ids = at::tensor(std::vector<int64_t>{5, 9, 380, 0}, at::kLong);
  r.prompt_mask = at::tensor(std::vector<int64_t>{1, 1, 1, 0}, at::kLong);
  r.negative_ids = at::tensor(std::vector<int64_t>{7, 0}, at::kLong);
  r.negative_mask = at::tensor(std::vector<int64_t>{1, 0}, at::kLong);
  r.seed = std::numeric_limits<uint64_t>::max();
  r.height = 64, r.width = 96, r.num_frames = 9, r.num_inference_steps = 3;
  r.cfg_scale = 4.25, r.sigma_shift = 3.5, r.tiled = true;
  r.tile_size = {6, 8}, r.tile_stride = {3, 4};
  r.tea_cache_l1_thresh = 0.125, r.tea_cache_model_id = "Wan2.1-T2V-1.3B";
  r.denoising_strength = 0.75;
  return r;
}

bool same_ids(const at::Tensor& a, const at::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  return !a.defined() || (a.scalar_type() == at::kLong && b.scalar_type() == at::kLong && a.equal(b));
}

bool same_request(const T2VRequest& a, const T2VRequest& b) {
  return same_ids(a.prompt_ids, b.prompt_ids) && same_ids(a.prompt_mask, b.prompt_mask) &&
         same_ids(a.negative_ids, b.negative_ids) && same_ids(a.negative_mask, b.negative_mask) && a.seed == b.seed &&
         a.height == b.height && a.width == b.width && a.num_frames == b.num_frames &&
         a.num_inference_steps == b.num_inference_steps && a.cfg_scale == b.cfg_scale &&
         a.sigma_shift == b.sigma_shift && a.tiled == b.tiled && a.tile_size == b.tile_size &&
         a.tile_stride == b.tile_stride && a.tea_cache_l1_thresh == b.tea_cache_l1_thresh &&
         a.tea_cache_model_id == b.tea_cache_model_id && a.denoising_strength == b.denoising_strength;
}

json minimal() { return {{"promptIds", {1, 2}}, {"promptMask", {1, 0}}}; }

// The ParamError `stmt` throws: its field and message.
template <typename F>
std::pair<std::string, std::string> param_error(F&& stmt) {
  try {
    stmt();
  } catch (const ParamError& e) {
    return {e.field, e.what()};
  }
  throw wantest::Failure{"no ParamError was thrown"};
}

}  // namespace

TEST(request_json_round_trips_every_field) {
  const T2VRequest r = every_field_set();
  EXPECT(same_request(request_from_json(request_to_json(r)), r));
  // Through text too, as the node stream and `wanlab-engine generate --request` carry it.
  EXPECT(same_request(request_from_json(json::parse(request_to_json(r).dump())), r));
  EXPECT(request_to_json(r)["seed"] == "18446744073709551615");
}

TEST(request_json_round_trips_a_request_without_negative_prompt) {
  T2VRequest r = every_field_set();
  r.negative_ids = at::Tensor(), r.negative_mask = at::Tensor();
  const json j = request_to_json(r);
  EXPECT(!j.contains("negativeIds") && !j.contains("negativeMask"));
  EXPECT(same_request(request_from_json(j), r));
}

TEST(request_json_absent_keys_keep_the_defaults) {
  const T2VRequest r = request_from_json(minimal()), d;
  EXPECT(r.height == d.height && r.width == d.width && r.num_frames == d.num_frames && r.seed == 0);
  EXPECT(r.num_inference_steps == d.num_inference_steps && r.cfg_scale == d.cfg_scale && r.tile_size == d.tile_size);
  EXPECT(!r.negative_ids.defined() && r.prompt_ids.size(0) == 2);
}

TEST(request_json_seed_of_2_64_minus_1_survives_as_string_and_number) {
  EXPECT(request_from_json(json{{"seed", "18446744073709551615"}}, false).seed == std::numeric_limits<uint64_t>::max());
  EXPECT(request_from_json(json{{"seed", std::numeric_limits<uint64_t>::max()}}, false).seed ==
         std::numeric_limits<uint64_t>::max());
  EXPECT(request_from_json(json{{"seed", 42}}, false).seed == 42);
}

TEST(request_json_refuses_seeds_outside_0_to_2_64_minus_1) {
  for (const json& bad : {json("18446744073709551616"), json(-1), json("-1"), json("12a"), json(""), json(1.5),
                          json(true), json(1e30)}) {
    const auto [field, what] = param_error([&] { request_from_json(json{{"seed", bad}}, false); });
    EXPECT(field == "seed");
    EXPECT(what.find("seed must be an integer from 0 to 2^64-1") != std::string::npos);
  }
}

TEST(request_json_refuses_unknown_key_naming_it) {
  json j = minimal();
  j["numFrame"] = 9;
  const auto [field, what] = param_error([&] { request_from_json(j); });
  EXPECT(field == "numFrame");
  EXPECT(what.find("unknown request key 'numFrame'") != std::string::npos && what.find("numFrames") != std::string::npos);
}

TEST(request_json_refuses_wrong_type_naming_the_key_and_field) {
  json j = minimal();
  j["numFrames"] = "81";
  auto [field, what] = param_error([&] { request_from_json(j); });
  EXPECT(field == "num_frames");
  EXPECT(what == "numFrames must be an integer, got the string \"81\"");
  j = minimal(), j["tiled"] = 1;
  EXPECT(param_error([&] { request_from_json(j); }).first == "tiled");
  j = minimal(), j["cfgScale"] = "5";
  EXPECT(param_error([&] { request_from_json(j); }).second == "cfgScale must be a finite number, got the string \"5\"");
  j = minimal(), j["teaCacheModelId"] = 3;
  EXPECT(param_error([&] { request_from_json(j); }).first == "tea_cache_model_id");
  EXPECT_ERROR(request_from_json(json::array()), "request must be a JSON object");
}

TEST(request_json_integers_must_be_integral_and_within_int64) {
  for (const json& bad : {json(16.0), json(16.5), json(9223372036854775808ULL), json(1e19)}) {
    json j = minimal();
    j["height"] = bad;
    const auto [field, what] = param_error([&] { request_from_json(j); });
    EXPECT(field == "height" && what.find("height must be an integer") != std::string::npos);
  }
}

TEST(request_json_tile_pairs_are_two_integers) {
  for (const json& bad : {json{1, 2, 3}, json{1}, json{1.5, 2}, json("30,52"), json{{"h", 1}}}) {
    json j = minimal();
    j["tileSize"] = bad;
    const auto [field, what] = param_error([&] { request_from_json(j); });
    EXPECT(field == "tile_size" && what.find("tileSize") != std::string::npos);
  }
  json j = minimal();
  j["tileStride"] = {4, 5};
  EXPECT((request_from_json(j).tile_stride == std::array<int64_t, 2>{4, 5}));
}

TEST(request_json_token_arrays_are_integers_and_masks_zero_or_one) {
  json j = minimal();
  j["promptIds"] = {1, "2"};
  auto [field, what] = param_error([&] { request_from_json(j); });
  EXPECT(field == "prompt" && what == "promptIds[1] must be an integer, got the string \"2\"");
  j = minimal(), j["promptMask"] = {1, 2};
  EXPECT(param_error([&] { request_from_json(j); }).second == "promptMask[1] must be an integer from 0 to 1, got the number 2");
  j = minimal(), j["negativeIds"] = {1};
  EXPECT(param_error([&] { request_from_json(j); }).first == "negative_prompt");  // without negativeMask
  j = minimal(), j["negativeIds"] = {1}, j["negativeMask"] = json::array({json(0.5)});
  EXPECT(param_error([&] { request_from_json(j); }).first == "negative_prompt");
}

TEST(request_json_needs_the_prompt_unless_planning) {
  EXPECT(param_error([] { request_from_json(json{{"promptIds", {1}}}); }).first == "prompt");
  const T2VRequest plan = request_from_json(json{{"height", 64}, {"numFrames", 5}}, false);
  EXPECT(plan.height == 64 && plan.num_frames == 5 && !plan.prompt_ids.defined());
}

TEST(request_json_refuses_arrays_over_a_million_values) {
  json j = minimal();
  j["promptIds"] = json(std::vector<int64_t>(kMaxJsonArray + 1, 1));
  const auto [field, what] = param_error([&] { request_from_json(j); });
  EXPECT(field == "prompt" && what.find("over the limit of 1048576") != std::string::npos);
}

// Strict readers of the JSON objects callers hand the engine (a request, engine options): each
// value must have exactly the expected JSON type and range, and every error is a ParamError
// (common/error.h) whose message names the key and what was found, never nlohmann's
// "[json.exception.type_error.302] ..." text.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wan {

// The longest array a caller may send (token ids, masks): 1M values.
constexpr size_t kMaxJsonArray = size_t(1) << 20;

// `obj` must be a JSON object whose keys are all in `known`; otherwise a ParamError on the first
// unknown key (field: that key) listing the known ones. `what` names the object in the message
// ("request", "engine options").
void check_json_keys(const nlohmann::json& obj, const std::vector<const char*>& known, const char* what);

// The readers take the value, the key it was found under (messages name it) and the ParamError
// field to report (the engine's name for it).
// An integral JSON number (1.0 and 1.5 are refused, as are numbers beyond int64) in [lo, hi].
int64_t json_field_int(const nlohmann::json& v, const std::string& key, const std::string& field,
                       int64_t lo = std::numeric_limits<int64_t>::min(),
                       int64_t hi = std::numeric_limits<int64_t>::max());
// A finite JSON number (integers accepted).
double json_field_number(const nlohmann::json& v, const std::string& key, const std::string& field);
bool json_field_bool(const nlohmann::json& v, const std::string& key, const std::string& field);
std::string json_field_string(const nlohmann::json& v, const std::string& key, const std::string& field);
// An array of at most `max_len` integers, each in [lo, hi].
std::vector<int64_t> json_field_ints(const nlohmann::json& v, const std::string& key, const std::string& field,
                                     size_t max_len = kMaxJsonArray,
                                     int64_t lo = std::numeric_limits<int64_t>::min(),
                                     int64_t hi = std::numeric_limits<int64_t>::max());

}  // namespace wan

#include "pipeline/json_fields.h"

#include <cmath>

#include "common/error.h"
#include "common/json_limits.h"

namespace wan {

using json = nlohmann::json;

void check_json_keys(const json& obj, const std::vector<const char*>& known, const char* what) {
  if (!obj.is_object()) throw ParamError(what, concat("the ", what, " must be a JSON object, got ", json_describe(obj)));
  for (const auto& item : obj.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || item.key() == k;
    if (ok) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    throw ParamError(item.key(), concat("unknown ", what, " key '", item.key(), "' (known: ", list, ")"));
  }
}

namespace {
[[noreturn]] void wrong(const json& v, const std::string& key, const std::string& field, const std::string& expected) {
  throw ParamError(field, concat(key, " must be ", expected, ", got ", json_describe(v)));
}
// An integral JSON number as int64, or false: nlohmann parses integers beyond int64 into
// number_unsigned (up to 2^64-1) or number_float.
bool as_int64(const json& v, int64_t* out) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return *out = v.get<int64_t>(), true;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
    return *out = int64_t(u), true;
  }
  return false;
}
std::string range(int64_t lo, int64_t hi) {
  const bool any_lo = lo == std::numeric_limits<int64_t>::min(), any_hi = hi == std::numeric_limits<int64_t>::max();
  if (any_lo && any_hi) return "an integer";
  if (any_hi) return concat("an integer >= ", lo);
  return concat("an integer from ", lo, " to ", hi);
}
}  // namespace

int64_t json_field_int(const json& v, const std::string& key, const std::string& field, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (!as_int64(v, &x) || x < lo || x > hi) wrong(v, key, field, range(lo, hi));
  return x;
}

double json_field_number(const json& v, const std::string& key, const std::string& field) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) wrong(v, key, field, "a finite number");
  return v.get<double>();
}

bool json_field_bool(const json& v, const std::string& key, const std::string& field) {
  if (!v.is_boolean()) wrong(v, key, field, "a boolean");
  return v.get<bool>();
}

std::string json_field_string(const json& v, const std::string& key, const std::string& field) {
  if (!v.is_string()) wrong(v, key, field, "a string");
  return v.get<std::string>();
}

std::vector<int64_t> json_field_ints(const json& v, const std::string& key, const std::string& field, size_t max_len,
                                     int64_t lo, int64_t hi) {
  if (!v.is_array()) wrong(v, key, field, concat("an array of ", range(lo, hi), "s"));
  if (v.size() > max_len)
    throw ParamError(field, concat(key, " has ", v.size(), " values, over the limit of ", max_len));
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!as_int64(v[i], &out[i]) || out[i] < lo || out[i] > hi)
      wrong(v[i], concat(key, "[", i, "]"), field, range(lo, hi));
  }
  return out;
}

}  // namespace wan

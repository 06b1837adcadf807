#include "common/json_limits.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <vector>

#include "common/error.h"

namespace wan {

using json = nlohmann::json;

const JsonLimits kSafetensorsHeaderJson{"safetensors header", 100ull << 20, 64, 1000000, true};
const JsonLimits kSafetensorsIndexJson{"safetensors index", 16ull << 20, 64, 1000000, true};
const JsonLimits kConfigJson{"config", 1ull << 20, 64, 100000, true};
const JsonLimits kTokenizerJson{"tokenizer.json", 64ull << 20, 64, 4000000, false};

namespace {

std::string mib(uint64_t bytes) {
  return bytes % (1ull << 20) == 0 ? concat(bytes >> 20, " MiB") : concat(bytes, " bytes");
}

// nlohmann's messages start "[json.exception.parse_error.101] "; the rest says where and why.
std::string without_id(const std::string& what) {
  if (what.rfind("[json.exception.", 0) == 0) {
    const size_t close = what.find("] ");
    if (close != std::string::npos) return what.substr(close + 2);
  }
  return what;
}

// Thrown from the parser callback to stop parsing at once (nlohmann lets it through).
struct Stop {
  std::string why;
};

}  // namespace

json parse_json_limited(const char* begin, const char* end, const std::string& path, const JsonLimits& limits) {
  const uint64_t n = uint64_t(end - begin);
  if (n > limits.max_bytes)
    fail(path, ": the ", limits.what, " is ", n, " bytes, over the ", mib(limits.max_bytes), " limit for it");
  std::vector<std::set<std::string>> open_objects;  // keys seen, per open object (unique_keys)
  uint64_t values = 0;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // `depth` counts the containers already open around this one.
        if (depth + 1 > limits.max_depth)
          throw Stop{concat("nests deeper than the limit of ", limits.max_depth, " levels")};
        if (ev == json::parse_event_t::object_start && limits.unique_keys) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (limits.unique_keys && !open_objects.empty()) open_objects.pop_back();
        [[fallthrough]];
      case json::parse_event_t::array_end:
      case json::parse_event_t::value:
        ++values;
        break;
      case json::parse_event_t::key:
        ++values;
        if (limits.unique_keys && !open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second)
          throw Stop{concat("has the key \"", parsed.get<std::string>(), "\" twice in one object")};
        break;
    }
    if (values > limits.max_values)
      throw Stop{concat("holds more than the limit of ", limits.max_values, " values (keys, numbers, strings, arrays, objects)")};
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const Stop& s) {
    fail(path, ": the ", limits.what, " ", s.why);
  } catch (const json::exception& e) {
    fail(path, ": the ", limits.what, " is not valid JSON: ", without_id(e.what()));
  }
  if (!j.is_object()) fail(path, ": the ", limits.what, " is ", json_describe(j), ", not a JSON object");
  return j;
}

json read_json_file(const std::string& path, const JsonLimits& limits) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail("cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(f.get()), &st) != 0) fail("cannot stat ", path, ": ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, ": the ", limits.what, " is not a regular file");
  if (uint64_t(st.st_size) > limits.max_bytes)
    fail(path, ": the ", limits.what, " is ", st.st_size, " bytes, over the ", mib(limits.max_bytes), " limit for it");
  // Read at most one byte past the limit: a file growing while read is held to it too.
  std::string text(size_t(st.st_size) + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const size_t r = std::fread(&text[got], 1, text.size() - got, f.get());
    if (r == 0) break;
    got += r;
  }
  if (std::ferror(f.get())) fail("cannot read ", path, ": ", std::strerror(errno));
  if (got > limits.max_bytes)
    fail(path, ": the ", limits.what, " is over the ", mib(limits.max_bytes), " limit for it");
  text.resize(got);
  return parse_json_limited(text.data(), text.data() + text.size(), path, limits);
}

std::string json_describe(const json& v) {
  auto clip = [](std::string s) { return s.size() > 60 ? s.substr(0, 57) + "..." : s; };
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return concat("the boolean ", v.dump());
    case json::value_t::string: return concat("the string ", clip(v.dump()));
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return concat("the number ", clip(v.dump()));
    case json::value_t::array: return concat("an array of ", v.size(), v.size() == 1 ? " element" : " elements");
    case json::value_t::object: return "an object";
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: return "nothing";
  }
  return "?";
}

namespace {
const json& member(const json& obj, const std::string& key, const std::string& file) {
  if (!obj.is_object()) fail(file, ": expected an object holding \"", key, "\", found ", json_describe(obj));
  auto it = obj.find(key);
  if (it == obj.end()) fail(file, ": \"", key, "\" is missing");
  return *it;
}
}  // namespace

int64_t json_int(const json& obj, const std::string& key, const std::string& file, int64_t lo, int64_t hi,
                 const std::string& why) {
  const json& v = member(obj, key, file);
  auto refuse = [&]() -> int64_t {
    const std::string range = hi != std::numeric_limits<int64_t>::max() ? concat("an integer in [", lo, ", ", hi, "]")
                              : lo == 1                                  ? std::string("a positive integer")
                                                                         : concat("an integer >= ", lo);
    fail(file, ": \"", key, "\" must be ", range, ", got ", json_describe(v), why.empty() ? "" : " (" + why + ")");
  };
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(hi) || (lo > 0 && u < uint64_t(lo))) return refuse();
    return int64_t(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) return refuse();
    return i;
  }
  return refuse();
}

double json_number(const json& obj, const std::string& key, const std::string& file, double lo, double hi) {
  const json& v = member(obj, key, file);
  const double d = v.is_number() ? v.get<double>() : NAN;
  if (!std::isfinite(d) || d < lo || d > hi)
    fail(file, ": \"", key, "\" must be a finite number in [", lo, ", ", hi, "], got ", json_describe(v));
  return d;
}

std::string json_string(const json& obj, const std::string& key, const std::string& file) {
  const json& v = member(obj, key, file);
  if (!v.is_string()) fail(file, ": \"", key, "\" must be a string, got ", json_describe(v));
  return v.get<std::string>();
}

}  // namespace wan

// JSON from disk, bounded: every JSON the engine reads from a model directory (safetensors
// headers, sharded indexes, config.json, tokenizer.json) goes through here, with a size, a
// nesting depth and a value count checked before and while parsing, so no file can make a load
// take gigabytes; and typed accessors whose errors name the file, the key, what was expected
// and what was there (never nlohmann's "[json.exception.type_error.302] ...").
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

struct JsonLimits {
  const char* what;     // "safetensors header", "config.json", ... (errors name it)
  uint64_t max_bytes;   // text size
  int max_depth;        // nested objects and arrays (the top-level object is depth 1)
  uint64_t max_values;  // keys, scalars and containers together (bounds the parsed tree's memory)
  bool unique_keys;     // a key twice in one object is an error (nlohmann would keep the last)
};

// The caps. Real Wan2.1 14B files for scale: the single-file DiT's safetensors header is about
// 140 KB (1095 tensors, about 11 thousand values), its sharded index about 100 KB, a config.json
// under 2 KB (about 40 values), UMT5-XXL's tokenizer.json about 17 MB (about 800 thousand values);
// none nests deeper than 6.
// safetensors header: 100 MiB (the format's own limit, as the Python package refuses more),
// depth 64, 1 million values.
extern const JsonLimits kSafetensorsHeaderJson;
// NAME.safetensors.index.json: 16 MiB, depth 64, 1 million values.
extern const JsonLimits kSafetensorsIndexJson;
// A component's config.json (official, diffusers) and model_index.json: 1 MiB, depth 64, 100 thousand values.
extern const JsonLimits kConfigJson;
// tokenizer.json: 64 MiB, depth 64, 4 million values (duplicate keys allowed, as tokenizers load them).
extern const JsonLimits kTokenizerJson;

// Parses [begin, end) under `limits`; the result must be an object. Errors name `path` and
// limits.what: invalid JSON (with nlohmann's position), too large, too deep, too many values, a
// duplicate key.
nlohmann::json parse_json_limited(const char* begin, const char* end, const std::string& path,
                                  const JsonLimits& limits);

// Reads a regular file of at most limits.max_bytes (checked before reading) and parses it.
nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits);

// What a JSON value is, for errors: `the string "two"`, `the number 1.5`, `an array`, `null`.
std::string json_describe(const nlohmann::json& v);

// Typed members of object `obj` read from `file`, each error a sentence naming the file and the
// key, what was expected and what was found.
// An integer (no fraction, no exponent: 2.0 and 1.5 are refused) in [lo, hi]; `why`, if given,
// ends the error in parentheses (what the bound stands for).
int64_t json_int(const nlohmann::json& obj, const std::string& key, const std::string& file, int64_t lo, int64_t hi,
                 const std::string& why = "");
// A finite number in [lo, hi] (integers accepted).
double json_number(const nlohmann::json& obj, const std::string& key, const std::string& file, double lo, double hi);
// A string.
std::string json_string(const nlohmann::json& obj, const std::string& key, const std::string& file);

}  // namespace wan

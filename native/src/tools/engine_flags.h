// The engine's option flags on the command line (`wanlab-engine inspect`, `generate`): one table
// mapping each --flag to the JSON key its decoder reads (openEngine's options:
// pipeline/engine_options.h; inspect's video: tools/inspect.h) and the value's kind. A command
// line becomes that JSON and goes through the same decoder as the addon's options; the usage
// text of these flags is written from the same table.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace wan {

struct EngineFlag {
  const char* flag;   // "--devices"
  const char* key;    // "devices"; "budgetVideo.height" for a key inside an object
  enum Kind { kString, kInt, kNumber, kSwitch, kCount, kBudget } kind;
  const char* value;  // what the usage text shows for the value ("LIST"; "" for a switch)
};

// Every flag, in the order usage text lists them.
const std::vector<EngineFlag>& engine_flags();
// The flags that take no value, among `names`.
std::vector<std::string> switch_flags(const std::vector<std::string>& names);
// The flag of a JSON key ("budgetVideo.height" -> "--budget-height"); the key itself when none.
std::string flag_of_key(const std::string& key);

// A value that does not parse as its flag's kind: a usage error (wanlab-engine exits 2).
struct FlagError : Error {
  using Error::Error;
};
// The flags given (flag -> value, "" for switches) among `names`, as the JSON their decoder
// reads. Throws FlagError naming the flag for a value of the wrong kind.
nlohmann::json flags_to_json(const std::map<std::string, std::string>& given, const std::vector<std::string>& names);
// "[--devices LIST] [--ulysses N] ..." for `names`, wrapped at `width` columns, continuation lines
// indented by `indent` spaces.
std::string flags_usage(const std::vector<std::string>& names, size_t indent, size_t width = 100);

// The value parsers behind the kinds, for commands' own flags too.
int parse_int_flag(const std::string& flag, const std::string& value);
double parse_number_flag(const std::string& flag, const std::string& value);
// A count: an integer with an optional K, M, G or B (10^9) suffix, e.g. 7000000000, 7e9 or 7G.
int64_t parse_count_flag(const std::string& flag, const std::string& value);

}  // namespace wan

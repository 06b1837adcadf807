// Errors carry context: the file, the tensor, the rank. One exception type for the engine,
// built with a stream-style helper so call sites read like sentences.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace wan {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A request parameter outside its allowed values. `field` names it as the request spells it
// (snake_case: "num_inference_steps"), so a caller maps it to its own name without reading the
// message (the addon sets err.field and err.code = "WANLAB_PARAM").
struct ParamError : Error {
  ParamError(std::string field, const std::string& what) : Error(what), field(std::move(field)) {}
  std::string field;
};

// concat("tensor ", name, " has ", n, " bytes") -> one string.
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(wan::concat(args...));
}

// fail_param("cfg_scale", "cfg_scale must be ...", x): a ParamError on that field.
template <typename... Args>
[[noreturn]] void fail_param(const char* field, const Args&... args) {
  throw ParamError(field, wan::concat(args...));
}

}  // namespace wan

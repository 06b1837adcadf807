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

}  // namespace wan

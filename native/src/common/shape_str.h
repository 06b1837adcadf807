// A tensor shape as error messages print it: "[3, 4]", "[]" for a scalar. Takes a tensor's
// sizes() or a std::vector<int64_t> of a shape read from a file.
#pragma once
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace wan {

inline std::string shape_str(c10::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace wan

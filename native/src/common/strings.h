// Prefix and suffix tests on names (tensor keys, files, pickle globals): C++17's std::string has
// neither (C++20's starts_with / ends_with), and spelling them out with compare() invites
// off-by-one slips.
#pragma once
#include <string>

namespace wan {

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace wan

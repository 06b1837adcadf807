// The median of a benchmark's timed runs (the middle value; the mean of the two middle ones for an
// even count; 0 for none): what every bench reports as median_s.
#pragma once
#include <algorithm>
#include <vector>

namespace wan {

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace wan

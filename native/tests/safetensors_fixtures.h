// Shared by the safetensors tests: files written by hand around a given header, and TensorMap
// equality (same dtype, shape and bytes for every name).
#pragma once
#include <cstdint>
#include <string>

#include "common/dtype.h"
#include "test.h"

namespace sttest {

using wantest::scratch;
using wantest::write_bytes;

inline std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header written by hand: length prefix, header (padded with spaces
// to a multiple of 8 like Python's writer unless pad=false), then the data section.
inline std::string st_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

// Writes a hand-made file named `name` into the scratch dir and returns its path.
inline std::string st_write(const std::string& name, const std::string& header, const std::string& data) {
  std::string p = scratch(name);
  write_bytes(p, st_file(header, data));
  return p;
}

inline bool same(const wan::TensorMap& a, const wan::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || !wantest::same(t, it->second)) return false;
  }
  return true;
}

}  // namespace sttest

// Shared by the .pth, pickle and zip tests: a tensor of every dtype, torch-style archives built by
// hand around a given data.pkl, and pickle bytes written opcode by opcode (for shapes torch never
// writes, hostile ones included).
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "formats/pickle.h"
#include "formats/zip.h"
#include "common/mapped_file.h"
#include "test.h"

namespace pthtest {

using namespace wan;
using wantest::scratch;
using wantest::write_bytes;

inline std::string read_bytes(const std::string& path) { return read_text_file(path); }

// One tensor of every dtype, with values that exercise sign, range and fractional bits.
inline TensorMap all_dtypes() {
  at::Tensor f = at::arange(12, at::kDouble).mul(0.37).sin().mul(100).reshape({3, 4});
  TensorMap m;
  m["t_bf16"] = {f.to(at::kBFloat16), DType::BF16};
  m["t_f16"] = {f.to(at::kHalf).t(), DType::F16};  // non-contiguous on purpose
  m["t_f32"] = {f.to(at::kFloat).reshape({2, 3, 2}), DType::F32};
  m["t_f64"] = {f.reshape({12}), DType::F64};
  m["t_f8_e4m3"] = {at::arange(256, at::kLong).to(at::kByte).reshape({16, 16}), DType::F8_E4M3};
  m["t_f8_e5m2"] = {at::arange(7, at::kLong).mul(37).to(at::kByte), DType::F8_E5M2};
  m["t_i64"] = {at::arange(-3, 3, at::kLong).mul(int64_t(1) << 40), DType::I64};
  m["t_i32"] = {at::arange(-5, 5, at::kLong).mul(123456789).to(at::kInt), DType::I32};
  m["t_i16"] = {at::arange(-4, 4, at::kLong).mul(8000).to(at::kShort), DType::I16};
  m["t_i8"] = {at::arange(-128, 128, 51, at::kLong).to(at::kChar), DType::I8};
  m["t_u8"] = {at::arange(0, 256, 17, at::kLong).to(at::kByte), DType::U8};
  m["t_bool"] = {f.gt(0), DType::BOOL};
  return m;
}

// Pickle bytes by hand, for shapes torch would never write (and hostile ones).
struct Pk {
  std::string b;
  Pk& op(uint8_t c) {
    b.push_back(char(c));
    return *this;
  }
  Pk& u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) b.push_back(char((v >> (8 * k)) & 0xff));
    return *this;
  }
  Pk& str(const std::string& s) {  // BINUNICODE
    op('X').u32(uint32_t(s.size()));
    b += s;
    return *this;
  }
  Pk& sstr(const std::string& s) {  // SHORT_BINUNICODE (protocol 4)
    op(0x8c).op(uint8_t(s.size()));
    b += s;
    return *this;
  }
  Pk& global(const std::string& module, const std::string& name, bool stack = false) {
    if (stack) return sstr(module).op(0x94).sstr(name).op(0x94).op(0x93).op(0x94);  // STACK_GLOBAL, MEMOIZE
    b += "c" + module + "\n" + name + "\n";
    return *this;
  }
  Pk& i(int64_t v) {  // BININT
    return op('J').u32(uint32_t(int32_t(v)));
  }
  Pk& ints(const std::vector<int64_t>& v) {  // MARK ints TUPLE
    op('(');
    for (int64_t x : v) i(x);
    return op('t');
  }
  Pk& empty_ordered_dict(bool stack = false) { return global("collections", "OrderedDict", stack).op(')').op('R'); }
  // _rebuild_tensor_v2(pid(key, storage, numel), offset, size, stride, False, OrderedDict())
  Pk& tensor(const std::string& key, const std::string& storage, int64_t numel, int64_t offset,
             const std::vector<int64_t>& size, const std::vector<int64_t>& stride, bool stack = false) {
    global("torch._utils", "_rebuild_tensor_v2", stack).op('(');
    op('(').str("storage").global("torch", storage, stack).str(key).str("cpu").i(numel).op('t').op('Q');
    i(offset).ints(size).ints(stride).op(0x89);
    empty_ordered_dict(stack).op('t').op('R');
    return *this;
  }
};

// A zip laid out like torch.save's: ARCHIVE/data.pkl, the storages, ARCHIVE/version.
inline std::string write_archive(const std::string& name, const std::string& pkl,
                          const std::vector<std::pair<std::string, std::string>>& storages = {},
                          bool force_zip64 = false) {
  std::string path = scratch(name);
  ZipWriter w(path, force_zip64);
  w.add("archive/data.pkl", pkl);
  for (const auto& [key, bytes] : storages) w.add("archive/data/" + key, bytes);
  w.add("archive/version", std::string("3\n"));
  w.finish();
  return path;
}

// What save_pth would put in an archive for `in`: the data.pkl and the storage records by key.
struct Archive {
  std::string pkl;
  std::vector<std::pair<std::string, std::string>> storages;
};
inline Archive archive_parts(const TensorMap& in) {
  std::vector<pickle::TensorSpec> specs;
  Archive a;
  for (const auto& [name, t] : in) {
    specs.push_back({name, t.dtype, t.data.sizes().vec()});
    at::Tensor c = t.data.contiguous();
    a.storages.emplace_back(std::to_string(a.storages.size()),
                            std::string(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * c.element_size()));
  }
  a.pkl = pickle::pickle_state_dict(specs);
  return a;
}

inline std::string floats(int n) {
  std::string s(size_t(n) * 4, '\0');
  for (int k = 0; k < n; ++k) {
    float v = float(k);
    std::memcpy(&s[size_t(k) * 4], &v, 4);
  }
  return s;
}

inline std::string quote(const std::string& s) { return "'" + s + "'"; }

inline int run(const std::string& cmd) {
  std::cout.flush();  // keep our output ordered with the child's
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}


}  // namespace pthtest

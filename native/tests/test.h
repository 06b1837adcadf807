// A minimal test harness: TEST(name) registers a case, CHECK/EXPECT_THROWS record failures.
// main() runs all cases (or those whose name contains argv[1]) and prints "N passed, M failed".
#pragma once
#include <ATen/ATen.h>

#include <initializer_list>

#include <cstdint>
#include <array>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace wan {
struct T2VRequest;
}

namespace wantest {
struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
struct Failure {
  std::string what;
};
// A scratch directory unique to this run, removed at exit.
std::string scratch_dir();
// scratch_dir() + "/" + name.
std::string scratch(const std::string& name);
// Writes `bytes` to `path` (replacing it); a failure is a test failure.
void write_bytes(const std::string& path, const std::string& bytes);
// The tiny model (make-tiny) in `layout` with `seed`, written once per run under scratch_dir().
// The golden data in test/golden/data was made from the official layout with seed 0.
std::string tiny_model(const std::string& layout = "official", uint64_t seed = 0);
// The repository root (for test/golden/data).
std::string source_dir();
// Relative L2 error |a - b| / |b| in float64.
double rel_l2(const at::Tensor& a, const at::Tensor& b);
// Runs fn, expects a wan::Error whose message mentions every needle (EXPECT_ERROR below).
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> needles, const char* file,
                  int line);
// A request for the tiny model: fixed prompt and negative token ids (12 and 7 tokens, text_len
// 512), the video size, `steps` steps, CFG `cfg_scale`. (Include pipeline/t2v.h to use it.)
wan::T2VRequest tiny_request(int64_t height, int64_t width, int64_t frames, int64_t steps = 2, double cfg_scale = 5.0,
                             uint64_t seed = 7);
// A request from a case of a golden generation file (test/golden/make_t2v.py and friends): the
// tensors <name>.prompt_ids/.prompt_mask/.negative_ids/.negative_mask of `g` and the case's JSON
// metadata (seed, size, steps, cfg, shift; tiling, TeaCache, denoising strength where present).
wan::T2VRequest golden_request(const wan::TensorMap& g, const std::string& name, const std::string& metadata);
// Runs fn(0) and fn(1) at once on two threads (the two nodes of a multi-node test) and returns
// what each threw: "" for a node whose fn returned.
std::array<std::string, 2> on_two_nodes(const std::function<void(int)>& fn);
// Same dtype, shape and bytes (bitwise, so NaN payloads and f8 patterns count).
bool same(const wan::StoredTensor& a, const wan::StoredTensor& b);
}  // namespace wantest

#define EXPECT_ERROR(stmt, ...) wantest::expect_error([&] { stmt; }, {__VA_ARGS__}, __FILE__, __LINE__)

#define WT_CAT2(a, b) a##b
#define WT_CAT(a, b) WT_CAT2(a, b)
#define TEST(name)                                                              \
  static void WT_CAT(test_, name)();                                            \
  static wantest::Register WT_CAT(reg_, name)(#name, WT_CAT(test_, name));      \
  static void WT_CAT(test_, name)()

#define EXPECT(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) throw wantest::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                        ": EXPECT(" #cond ") failed"};                            \
  } while (0)

// Runs `stmt`, expects a wan::Error whose message contains `needle`.
#define EXPECT_THROWS(stmt, needle)                                                                   \
  do {                                                                                               \
    bool thrown_ = false;                                                                            \
    try {                                                                                            \
      stmt;                                                                                          \
    } catch (const wan::Error& e_) {                                                                 \
      thrown_ = true;                                                                                \
      if (std::string(e_.what()).find(needle) == std::string::npos)                                  \
        throw wantest::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) +             \
                               ": error \"" + e_.what() + "\" does not mention \"" + (needle) + "\""}; \
    }                                                                                                \
    if (!thrown_)                                                                                    \
      throw wantest::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #stmt    \
                             " did not throw"};                                                      \
  } while (0)

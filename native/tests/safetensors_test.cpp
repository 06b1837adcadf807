#include "formats/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/mapped_file.h"
#include "test.h"

using namespace wan;

namespace {

using wantest::scratch;
using wantest::write_bytes;

std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header written by hand: length prefix, header (padded with spaces
// to a multiple of 8 like Python's writer unless pad=false), then the data section.
std::string st_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

// Writes a hand-made file named `name` into the scratch dir and returns its path.
std::string st_write(const std::string& name, const std::string& header, const std::string& data) {
  std::string p = scratch(name);
  write_bytes(p, st_file(header, data));
  return p;
}


using wantest::same;

bool same(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || !same(t, it->second)) return false;
  }
  return true;
}

// Address ranges of the mappings of `path` in this process, from /proc/self/maps: the only way
// to see where load_safetensors mapped a file without widening its API.
std::vector<std::pair<uintptr_t, uintptr_t>> mappings_of(const std::string& path) {
  std::string want = std::filesystem::canonical(path).string();
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream ls(line);
    std::string range, perms, offset, dev, inode, file;
    ls >> range >> perms >> offset >> dev >> inode;
    std::getline(ls >> std::ws, file);
    if (file != want) continue;
    size_t dash = range.find('-');
    out.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16), std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  return out;
}

bool inside(const void* p, const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
  auto a = reinterpret_cast<uintptr_t>(p);
  for (const auto& [lo, hi] : ranges)
    if (a >= lo && a < hi) return true;
  return false;
}

TensorMap all_dtypes() {
  at::manual_seed(7);
  TensorMap m;
  m["bf16"] = {at::randn({3, 5}).to(at::kBFloat16), DType::BF16};
  m["f16"] = {at::randn({4}).to(at::kHalf), DType::F16};
  m["f32"] = {at::randn({2, 3, 4}), DType::F32};
  m["f64"] = {at::randn({7}, at::kDouble), DType::F64};
  // Every byte pattern, NaNs included: f8 must come back bit for bit.
  m["f8_e4m3"] = {at::arange(256, at::kInt).to(at::kByte), DType::F8_E4M3};
  m["f8_e5m2"] = {at::arange(256, at::kInt).to(at::kByte).flip(0).reshape({16, 16}), DType::F8_E5M2};
  m["i64"] = {at::arange(-5, 6, at::kLong), DType::I64};
  m["i32"] = {at::randint(-1000, 1000, {3, 3}, at::kInt), DType::I32};
  m["i16"] = {at::randint(-300, 300, {5}, at::kShort), DType::I16};
  m["i8"] = {at::randint(-128, 128, {9}, at::kChar), DType::I8};
  m["u8"] = {at::randint(0, 256, {3}, at::kByte), DType::U8};
  m["bool"] = {at::randint(0, 2, {11}).to(at::kBool), DType::BOOL};
  m["scalar_f32"] = {at::scalar_tensor(3.5, at::kFloat), DType::F32};
  m["scalar_bf16"] = {at::scalar_tensor(-1.25, at::kBFloat16), DType::BF16};
  m["scalar_i64"] = {at::scalar_tensor(42, at::kLong), DType::I64};
  m["empty_f16"] = {at::empty({0, 3}, at::kHalf), DType::F16};
  m["empty_i64"] = {at::empty({5, 0}, at::kLong), DType::I64};
  m["transposed"] = {at::randn({4, 6}).t(), DType::F32};
  m["strided"] = {at::arange(20, at::kInt).slice(0, 0, 20, 3), DType::I32};
  return m;
}

}  // namespace

TEST(safetensors_round_trip_all_dtypes) {
  TensorMap m = all_dtypes();
  EXPECT(!m["transposed"].data.is_contiguous() && !m["strided"].data.is_contiguous());
  std::string p = scratch("all_dtypes.safetensors");
  save_safetensors(p, m);
  TensorMap mapped = load_safetensors(p, true);
  TensorMap copied = load_safetensors(p, false);
  EXPECT(same(m, mapped));
  EXPECT(same(m, copied));
  EXPECT(mapped["scalar_f32"].data.dim() == 0 && mapped["scalar_f32"].data.item<float>() == 3.5f);
  EXPECT(mapped["empty_f16"].data.sizes() == at::IntArrayRef({0, 3}));
  EXPECT(mapped["f8_e4m3"].data.scalar_type() == at::kByte && mapped["f8_e4m3"].dtype == DType::F8_E4M3);
  EXPECT(to_float32(mapped["f8_e4m3"])[0x38].item<float>() == 1.0f);
  // Writing wider types first keeps every tensor aligned despite the odd-sized bf16 scalar, so
  // every non-empty tensor aliases the mapping.
  auto ranges = mappings_of(p);
  EXPECT(!ranges.empty());
  for (const auto& [name, t] : mapped)
    if (t.data.numel() > 0) EXPECT(inside(t.data.data_ptr(), ranges));
}

TEST(safetensors_mmap_aliases_file_copy_does_not) {
  TensorMap m;
  m["w"] = {at::randn({64, 64}), DType::F32};
  m["b"] = {at::randn({64}).to(at::kBFloat16), DType::BF16};
  std::string p = scratch("alias.safetensors");
  save_safetensors(p, m);
  TensorMap mapped = load_safetensors(p, true);
  auto ranges = mappings_of(p);
  EXPECT(!ranges.empty());
  EXPECT(inside(mapped["w"].data.data_ptr(), ranges));
  EXPECT(inside(mapped["b"].data.data_ptr(), ranges));

  TensorMap copied = load_safetensors(p, false);
  EXPECT(same(mapped, copied));
  EXPECT(!inside(copied["w"].data.data_ptr(), ranges));
  EXPECT(!inside(copied["b"].data.data_ptr(), ranges));
}

TEST(safetensors_mapping_lives_while_a_tensor_lives) {
  TensorMap m;
  m["x"] = {at::arange(16, at::kFloat), DType::F32};
  m["y"] = {at::ones({8}, at::kFloat), DType::F32};
  std::string p = scratch("lifetime.safetensors");
  save_safetensors(p, m);
  EXPECT(mappings_of(p).empty());
  at::Tensor x;
  {
    TensorMap mapped = load_safetensors(p, true);
    x = mapped["x"].data;
  }
  // The map is gone; the mapping must stay for the tensor that still aliases it.
  EXPECT(inside(x.data_ptr(), mappings_of(p)));
  EXPECT(x[15].item<float>() == 15.0f);
  x.reset();
  EXPECT(mappings_of(p).empty());
  // mmap=false closes the file before returning.
  TensorMap copied = load_safetensors(p, false);
  EXPECT(mappings_of(p).empty());
}

TEST(safetensors_overwrite_while_mapped_keeps_old_data) {
  std::string p = scratch("overwrite.safetensors");
  save_safetensors(p, {{"x", {at::tensor({1.0f, 2.0f}), DType::F32}}});
  TensorMap old = load_safetensors(p, true);
  save_safetensors(p, {{"x", {at::tensor({3.0f, 4.0f}), DType::F32}}});
  // The save renamed a new file over the path; the old mapping still shows the old inode.
  EXPECT(old["x"].data[1].item<float>() == 2.0f);
  EXPECT(load_safetensors(p, true)["x"].data[1].item<float>() == 4.0f);
  for (const auto& e : std::filesystem::directory_iterator(wantest::scratch_dir()))
    EXPECT(e.path().extension() != ".tmp");
}

TEST(safetensors_metadata_round_trip) {
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"model", "wan2.1-t2v-1.3B"}, {"note", "ünïcode ✓"}};
  std::string p = scratch("meta.safetensors");
  save_safetensors(p, {{"x", {at::zeros({2}), DType::F32}}}, meta);
  EXPECT(read_safetensors_header(p).metadata == meta);

  // No metadata: no "__metadata__" key at all, as Python writes it.
  std::string q = scratch("nometa.safetensors");
  save_safetensors(q, {{"x", {at::zeros({2}), DType::F32}}});
  EXPECT(read_safetensors_header(q).metadata.empty());
  EXPECT(read_text_file(q).find("__metadata__") == std::string::npos);
}

TEST(safetensors_saved_layout_matches_python) {
  TensorMap m = all_dtypes();
  std::string p = scratch("layout.safetensors");
  save_safetensors(p, m, {{"format", "pt"}});
  std::string bytes = read_text_file(p);
  SafetensorsHeader h = read_safetensors_header(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT(n % 8 == 0 && h.data_offset == 8 + n && h.file_size == bytes.size());
  std::string header = bytes.substr(8, n);
  // Padding is spaces after the JSON, which itself is compact with sorted keys.
  nlohmann::json j = nlohmann::json::parse(header);
  EXPECT(header.substr(0, header.find_last_not_of(' ') + 1) == j.dump());
  // Back to back from offset 0 to the end of the file: Python's reader rejects gaps.
  uint64_t at = 0;
  for (const auto& e : h.tensors) {
    EXPECT(e.begin == at);
    EXPECT((h.data_offset + e.begin) % dtype_size(e.dtype) == 0);
    at = e.end;
  }
  EXPECT(at == h.file_size - h.data_offset);
  EXPECT(h.tensors.size() == m.size());
}

TEST(safetensors_python_byte_layout_loads) {
  // What safetensors.torch.save_file({"b": tensor([1.5, -2.0]), "a": tensor(1.0, dtype=bfloat16)},
  // metadata={"format": "pt"}) writes: compact JSON, __metadata__ first, tensors by offset with
  // wider dtypes first, padded with spaces to 8 bytes.
  std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}})";
  std::string data("\x00\x00\xc0\x3f\x00\x00\x00\xc0\x80\x3f", 10);
  std::string p = st_write("python.safetensors", header, data);
  EXPECT((8 + ((header.size() + 7) / 8) * 8) % 8 == 0);
  for (bool mmap : {true, false}) {
    TensorMap m = load_safetensors(p, mmap);
    EXPECT(m.size() == 2);
    EXPECT(m["b"].dtype == DType::F32 && m["b"].data.sizes() == at::IntArrayRef({2}));
    EXPECT(m["b"].data[0].item<float>() == 1.5f && m["b"].data[1].item<float>() == -2.0f);
    EXPECT(m["a"].dtype == DType::BF16 && m["a"].data.dim() == 0);
    EXPECT(m["a"].data.item<float>() == 1.0f);
  }
  SafetensorsHeader h = read_safetensors_header(p);
  EXPECT(h.metadata.at("format") == "pt");
  EXPECT(h.tensors.size() == 2 && h.tensors[0].name == "b" && h.tensors[1].name == "a");
}

TEST(safetensors_unaligned_tensor_is_copied) {
  // An unpadded header leaves the data section at an odd offset; the F32 tensor cannot be
  // aliased without a misaligned float*, so the loader must copy it even with mmap=true.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 1) header += ' ';
  float v[2] = {0.25f, -8.0f};
  std::string p = scratch("unaligned.safetensors");
  write_bytes(p, st_file(header, std::string(reinterpret_cast<const char*>(v), 8), false));
  EXPECT(read_safetensors_header(p).data_offset % 4 == 1);
  TensorMap m = load_safetensors(p, true);
  EXPECT(reinterpret_cast<uintptr_t>(m["x"].data.data_ptr()) % 4 == 0);
  EXPECT(!inside(m["x"].data.data_ptr(), mappings_of(p)));
  EXPECT(m["x"].data[0].item<float>() == 0.25f && m["x"].data[1].item<float>() == -8.0f);
}

TEST(safetensors_gaps_between_tensors_are_allowed) {
  std::string header = R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                       R"("y":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},)"
                       R"("z":{"dtype":"I32","shape":[0],"data_offsets":[4,4]}})";
  std::string data("\x01\x00\x00\x00\xff\xff\xff\xff\x02\x00\x00\x00", 12);
  TensorMap m = load_safetensors(st_write("gaps.safetensors", header, data));
  EXPECT(m["x"].data.item<int>() == 1 && m["y"].data.item<int>() == 2 && m["z"].data.numel() == 0);
}

// ---- bad input: every error names the file and, where there is one, the tensor ----

TEST(safetensors_error_file_too_short) {
  std::string p = scratch("short.safetensors");
  write_bytes(p, "abc");
  EXPECT_ERROR(load_safetensors(p), p, "too short");
  std::string q = scratch("empty.safetensors");
  write_bytes(q, "");
  EXPECT_ERROR(read_safetensors_header(q), q, "too short");
}

TEST(safetensors_error_truncated_file) {
  std::string good = scratch("whole.safetensors");
  save_safetensors(good, {{"weight", {at::randn({256}), DType::F32}}});
  std::string bytes = read_text_file(good);
  // Half the file keeps the header and loses the data.
  std::string half = scratch("half.safetensors");
  write_bytes(half, bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR(load_safetensors(half), half, "weight", "past the end of");
  // Cut inside the header.
  std::string cut = scratch("cut.safetensors");
  write_bytes(cut, bytes.substr(0, 20));
  EXPECT_ERROR(load_safetensors(cut), cut, "truncated");
}

TEST(safetensors_error_header_length_past_eof) {
  std::string p = scratch("len_past_eof.safetensors");
  write_bytes(p, u64le(4096) + R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})");
  EXPECT_ERROR(load_safetensors(p), p, "truncated", "4096");
}

TEST(safetensors_error_header_length_zero_or_huge) {
  std::string zero = scratch("len_zero.safetensors");
  write_bytes(zero, u64le(0) + "{}");
  EXPECT_ERROR(load_safetensors(zero), zero, "header length is 0");
  std::string huge = scratch("len_huge.safetensors");
  write_bytes(huge, u64le(200ull << 20) + "{}");
  EXPECT_ERROR(load_safetensors(huge), huge, "limit");
  // A torch.save zip misread as safetensors: "PK\3\4..." as a length is astronomically large.
  std::string zip = scratch("zip.safetensors");
  write_bytes(zip, std::string("PK\x03\x04\x14\x00\x00\x00\x08\x00", 10));
  EXPECT_ERROR(load_safetensors(zip), zip, "limit");
}

TEST(safetensors_error_invalid_json) {
  std::string p = st_write("badjson.safetensors", R"({"x":{"dtype":"F32",)", "");
  EXPECT_ERROR(load_safetensors(p), p, "not valid JSON");
  std::string q = st_write("array.safetensors", "[1, 2, 3]", "");
  EXPECT_ERROR(load_safetensors(q), q, "not a JSON object");
}

TEST(safetensors_header_nested_beyond_the_depth_limit_is_refused_before_it_is_built) {
  // 8 MiB of "[": nlohmann would build 8 million nested arrays (gigabytes); the limit stops at 64.
  std::string deep = "{\"x\":" + std::string(8u << 20, '[');
  std::string p = st_write("deep.safetensors", deep, "");
  EXPECT_ERROR(read_safetensors_header(p), p, "safetensors header", "nests deeper than the limit of 64");
  // 64 levels are fine as far as JSON goes (the entry is then refused for what it is).
  std::string ok = "{\"x\":" + std::string(63, '[') + std::string(63, ']') + "}";
  std::string q = st_write("deep64.safetensors", ok, "");
  EXPECT_ERROR(read_safetensors_header(q), q, "\"x\"", "not an object");
}

TEST(safetensors_header_with_too_many_values_is_refused) {
  std::string many = "{\"__metadata__\":{},\"x\":[";
  for (int i = 0; i < 1000001; ++i) many += "0,";
  many += "0]}";
  std::string p = st_write("many.safetensors", many, "");
  EXPECT_ERROR(read_safetensors_header(p), p, "safetensors header", "more than the limit of 1000000 values");
}

TEST(safetensors_index_nested_beyond_the_depth_limit_is_refused) {
  std::string p = scratch("deep.safetensors.index.json");
  write_bytes(p, "{\"weight_map\":" + std::string(1u << 20, '['));
  EXPECT_ERROR(load_safetensors_index(p), p, "safetensors index", "nests deeper than the limit of 64");
  std::string q = scratch("big.safetensors.index.json");
  write_bytes(q, "{\"metadata\":{\"pad\":\"" + std::string((16u << 20) + 1, 'x') + "\"}}");
  EXPECT_ERROR(load_safetensors_index(q), q, "over the 16 MiB limit");
}

TEST(safetensors_error_duplicate_tensor_name) {
  std::string p = st_write("dup.safetensors",
                           R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                           R"("x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                           "ab");
  EXPECT_ERROR(load_safetensors(p), p, "\"x\"", "twice");
}

TEST(safetensors_error_missing_or_ill_typed_fields) {
  std::string a = st_write("nodtype.safetensors", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd");
  EXPECT_ERROR(load_safetensors(a), a, "\"w\"", "missing \"dtype\"");
  std::string b = st_write("noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd");
  EXPECT_ERROR(load_safetensors(b), b, "\"w\"", "missing \"shape\"");
  std::string c = st_write("nooffsets.safetensors", R"({"w":{"dtype":"F32","shape":[1]}})", "abcd");
  EXPECT_ERROR(load_safetensors(c), c, "\"w\"", "missing \"data_offsets\"");
  std::string d = st_write("dtypenum.safetensors", R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "abcd");
  EXPECT_ERROR(load_safetensors(d), d, "\"w\"", "\"dtype\" is not a string");
  std::string e = st_write("shapestr.safetensors", R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", "abcd");
  EXPECT_ERROR(load_safetensors(e), e, "\"w\"", "\"shape\" is not an array");
  std::string f = st_write("offsets3.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "abcd");
  EXPECT_ERROR(load_safetensors(f), f, "\"w\"", "data_offsets");
  std::string g = st_write("entrynum.safetensors", R"({"w":5})", "");
  EXPECT_ERROR(load_safetensors(g), g, "\"w\"", "not an object");
}

TEST(safetensors_error_unknown_dtype) {
  std::string p = st_write("f4.safetensors", R"({"packed":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", "a");
  EXPECT_ERROR(load_safetensors(p), p, "\"packed\"", "unknown dtype \"F4\"");
}

TEST(safetensors_error_bad_shape_dims) {
  std::string neg = st_write("negdim.safetensors", R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}})", "");
  EXPECT_ERROR(load_safetensors(neg), neg, "\"w\"", "shape dim 1 is negative");
  std::string frac = st_write("fracdim.safetensors", R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,0]}})", "");
  EXPECT_ERROR(load_safetensors(frac), frac, "\"w\"", "not an integer");
  std::string str = st_write("strdim.safetensors", R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,0]}})", "");
  EXPECT_ERROR(load_safetensors(str), str, "\"w\"", "not an integer");
}

TEST(safetensors_error_shape_overflow) {
  // 2^62 * 8 elements wraps to 0 in 64 bits, which would "match" an empty byte range.
  std::string p = st_write("overflow.safetensors",
                           R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,0]}})", "");
  EXPECT_ERROR(load_safetensors(p), p, "\"w\"", "overflow");
  // Numel fits, bytes do not.
  std::string q = st_write("overflow_bytes.safetensors",
                           R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", "");
  EXPECT_ERROR(load_safetensors(q), q, "\"w\"", "overflow");
}

TEST(safetensors_error_offsets_reversed) {
  std::string p = st_write("reversed.safetensors", R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})",
                           std::string(8, 'x'));
  EXPECT_ERROR(load_safetensors(p), p, "\"w\"", "begin > end");
}

TEST(safetensors_error_offsets_past_end) {
  std::string p = st_write("pastend.safetensors",
                           R"({"ok":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                           R"("far":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(8, 'x'));
  EXPECT_ERROR(load_safetensors(p), p, "\"far\"", "past the end of");
}

TEST(safetensors_error_wrong_byte_count) {
  std::string p = st_write("bytecount.safetensors", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                           std::string(24, 'x'));
  EXPECT_ERROR(load_safetensors(p), p, "\"w\"", "expected 24 bytes");
}

TEST(safetensors_error_overlapping_tensors) {
  std::string p = st_write("overlap.safetensors",
                           R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, 'x'));
  EXPECT_ERROR(load_safetensors(p), p, "overlap", "\"first\"", "\"second\"");
  // A small tensor entirely inside a bigger one is an overlap too.
  std::string q = st_write("nested.safetensors",
                           R"({"big":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
                           R"("small":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                           R"("after":{"dtype":"U8","shape":[2],"data_offsets":[16,18]}})",
                           std::string(18, 'x'));
  EXPECT_ERROR(load_safetensors(q), q, "overlap", "\"big\"", "\"small\"");
}

TEST(safetensors_error_metadata_not_strings) {
  std::string p = st_write("metanum.safetensors", R"({"__metadata__":{"step":100},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                           "x");
  EXPECT_ERROR(load_safetensors(p), p, "__metadata__", "\"step\"", "not a string");
  std::string q = st_write("metaarr.safetensors", R"({"__metadata__":["a"]})", "");
  EXPECT_ERROR(read_safetensors_header(q), q, "__metadata__", "not an object");
}

TEST(safetensors_error_bool_byte_not_0_or_1) {
  std::string p = st_write("bool.safetensors", R"({"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                           std::string("\x01\x00\x02", 3));
  EXPECT_ERROR(load_safetensors(p), p, "\"mask\"", "BOOL");
}

TEST(safetensors_error_missing_file) {
  std::string p = scratch("does_not_exist.safetensors");
  EXPECT_ERROR(load_safetensors(p), p);
}

TEST(safetensors_save_rejects_bad_tensors) {
  std::string p = scratch("bad_save.safetensors");
  EXPECT_ERROR(save_safetensors(p, {{"w", {at::zeros({2}, at::kFloat), DType::BF16}}}), p, "\"w\"", "BF16");
  EXPECT_ERROR(save_safetensors(p, {{"__metadata__", {at::zeros({2}), DType::F32}}}), p, "__metadata__");
  EXPECT_ERROR(save_safetensors(p, {{"u", {at::Tensor(), DType::F32}}}), p, "\"u\"", "undefined");
  EXPECT(!std::filesystem::exists(p) && !std::filesystem::exists(p + ".tmp"));
}

// ---- sharded sets ----

namespace {
TensorMap six_blocks() {
  TensorMap m;
  for (int i = 0; i < 6; ++i) m["blocks." + std::to_string(i)] = {at::randn({100}), DType::F32};  // 400 bytes each
  return m;
}
std::string shard_dir(const std::string& name) { return scratch(name); }
}  // namespace

TEST(safetensors_sharded_round_trip) {
  TensorMap m = six_blocks();
  std::string dir = shard_dir("sharded");
  std::vector<std::string> names = save_safetensors_sharded(dir, "model", m, 1000);
  EXPECT(names == std::vector<std::string>({"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                            "model-00003-of-00003.safetensors"}));
  for (const auto& n : names) EXPECT(std::filesystem::exists(dir + "/" + n));

  std::string index_path = dir + "/model.safetensors.index.json";
  std::string text = read_text_file(index_path);
  nlohmann::json index = nlohmann::json::parse(text);
  EXPECT(text == index.dump(2) + "\n");  // sorted keys, 2-space indent, as transformers writes it
  EXPECT(index["metadata"]["total_size"].get<uint64_t>() == 2400);
  EXPECT(index["weight_map"].size() == 6);
  EXPECT(index["weight_map"]["blocks.0"] == names[0] && index["weight_map"]["blocks.1"] == names[0]);
  EXPECT(index["weight_map"]["blocks.2"] == names[1] && index["weight_map"]["blocks.5"] == names[2]);

  EXPECT(same(m, load_safetensors_index(index_path, true)));
  EXPECT(same(m, load_safetensors_index(index_path, false)));
  EXPECT(load_safetensors(dir + "/" + names[1]).size() == 2);
}

TEST(safetensors_sharded_big_tensor_gets_own_shard) {
  TensorMap m;
  m["a"] = {at::zeros({25}), DType::F32};
  m["big"] = {at::zeros({1250}), DType::F32};
  m["c"] = {at::zeros({25}), DType::F32};
  std::string dir = shard_dir("sharded_big");
  auto names = save_safetensors_sharded(dir, "diffusion_pytorch_model", m, 1000);
  EXPECT(names.size() == 3 && names[1] == "diffusion_pytorch_model-00002-of-00003.safetensors");
  EXPECT(load_safetensors(dir + "/" + names[1]).count("big") == 1);
  EXPECT(same(m, load_safetensors_index(dir + "/diffusion_pytorch_model.safetensors.index.json")));
}

TEST(safetensors_index_missing_shard) {
  std::string dir = shard_dir("missing_shard");
  auto names = save_safetensors_sharded(dir, "model", six_blocks(), 1000);
  std::filesystem::remove(dir + "/" + names[1]);
  std::string index_path = dir + "/model.safetensors.index.json";
  EXPECT_ERROR(load_safetensors_index(index_path), names[1], index_path);
}

namespace {
// Rewrites an index file through `edit`.
void edit_index(const std::string& index_path, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(read_text_file(index_path));
  edit(j);
  write_bytes(index_path, j.dump(2));
}
}  // namespace

TEST(safetensors_index_tensor_missing_from_shard) {
  std::string dir = shard_dir("ghost");
  auto names = save_safetensors_sharded(dir, "model", six_blocks(), 1000);
  std::string index_path = dir + "/model.safetensors.index.json";
  edit_index(index_path, [&](nlohmann::json& j) { j["weight_map"]["ghost"] = names[0]; });
  EXPECT_ERROR(load_safetensors_index(index_path), "\"ghost\"", names[0], index_path);
}

TEST(safetensors_index_tensor_not_in_index) {
  std::string dir = shard_dir("unlisted");
  auto names = save_safetensors_sharded(dir, "model", six_blocks(), 1000);
  std::string index_path = dir + "/model.safetensors.index.json";
  edit_index(index_path, [&](nlohmann::json& j) { j["weight_map"].erase("blocks.3"); });
  EXPECT_ERROR(load_safetensors_index(index_path), "\"blocks.3\"", names[1], index_path);
}

TEST(safetensors_index_tensor_in_two_shards) {
  std::string dir = shard_dir("twice");
  std::filesystem::create_directories(dir);
  save_safetensors(dir + "/a.safetensors", {{"x", {at::zeros({2}), DType::F32}}});
  save_safetensors(dir + "/b.safetensors", {{"x", {at::ones({2}), DType::F32}}, {"y", {at::ones({2}), DType::F32}}});
  std::string index_path = dir + "/index.json";
  write_bytes(index_path, R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index_path), "\"x\"", "a.safetensors", "b.safetensors");
  // The index itself listing a tensor twice is caught too.
  write_bytes(index_path, R"({"weight_map":{"y":"b.safetensors","y":"a.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index_path), index_path, "\"y\"", "twice");
}

TEST(safetensors_index_rejects_paths_in_shard_names) {
  std::string dir = shard_dir("paths");
  std::filesystem::create_directories(dir + "/sub");
  save_safetensors(dir + "/sub/s.safetensors", {{"x", {at::zeros({2}), DType::F32}}});
  std::string index_path = dir + "/index.json";
  write_bytes(index_path, R"({"weight_map":{"x":"sub/s.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index_path), index_path, "sub/s.safetensors");
  write_bytes(index_path, R"({"weight_map":{"x":"../paths/sub/s.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index_path), index_path, "..");
  write_bytes(index_path, R"({"metadata":{}})");
  EXPECT_ERROR(load_safetensors_index(index_path), index_path, "weight_map");
  write_bytes(index_path, R"({"weight_map":{"x":3}})");
  EXPECT_ERROR(load_safetensors_index(index_path), index_path, "\"x\"", "not a string");
}

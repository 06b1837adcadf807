// Round trips of every dtype, mmap aliasing and its lifetime, the byte layout Python writes and
// reads, and sharded sets with their index. Refused files are in safetensors_errors_test.cpp.
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
#include "safetensors_fixtures.h"
#include "test.h"

using namespace wan;
using namespace sttest;

namespace {

using wantest::same;

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

// safetensors files refused with errors that name the file, the tensor and what is wrong:
// truncated or oversized headers, bad JSON, bad fields, dtypes, shapes and offsets, overlaps,
// and the header and index limits (common/json_limits.h).
#include <nlohmann/json.hpp>
#include <string>

#include "formats/safetensors.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "safetensors_fixtures.h"
#include "test.h"

using namespace wan;
using namespace sttest;

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

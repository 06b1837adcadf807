// Limits from evidence: every architecture value a config.json, an index or a header gives is
// checked (type, bounds, agreement with the tensor shapes) before anything is allocated from it,
// every JSON read from a model directory has size, depth and value limits, and every refusal names
// the file and the key or tensor. Each case corrupts a copy of the tiny model and expects the same
// refusal from load_model (what generate and the server load) and from inspect_model.
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "tools/inspect.h"
#include "checkpoint/layout.h"
#include "formats/safetensors.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/mapped_file.h"
#include "checkpoint/arch.h"
#include "test.h"

namespace fs = std::filesystem;
using namespace wan;
using json = nlohmann::json;

namespace {

// A private copy of the tiny model in `layout`, to corrupt.
std::string copy_tiny(const std::string& name, const std::string& layout = "official") {
  const std::string dst = wantest::scratch_dir() + "/bounds-" + name;
  remove_tree(dst);
  fs::copy(wantest::tiny_model(layout), dst, fs::copy_options::recursive);
  return dst;
}

void write_text(const std::string& path, const std::string& text) { wantest::write_bytes(path, text); }

// Sets `key` of the JSON file at `path` to `value` (given as JSON text, so that 1.5, "two",
// 1e999 and -0 are written as they read).
void set_key(const std::string& path, const std::string& key, const std::string& value) {
  json j = json::parse(read_text_file(path));
  j.erase(key);
  std::string text = j.dump();
  text.insert(1, "\"" + key + "\":" + value + (j.empty() ? "" : ","));
  write_text(path, text);
}

// Both ways in refuse the model with an error naming every needle.
void refused(const std::string& dir, std::initializer_list<std::string> needles, int line) {
  wantest::expect_error([&] { load_model(dir); }, needles, __FILE__, line);
  InspectOptions o;
  o.engine.parallel.devices = "cpu";
  wantest::expect_error([&] { inspect_model(dir, o); }, needles, __FILE__, line);
}
#define REFUSED(dir, ...) refused(dir, {__VA_ARGS__}, __LINE__)

// The official layout's config.json with `key` set to `value`, refused naming the file, the key
// and each of `more`.
void config_refused(const std::string& key, const std::string& value, std::initializer_list<std::string> more,
                    int line) {
  static int n = 0;
  const std::string d = copy_tiny("config-" + std::to_string(++n));
  const std::string cfg = d + "/config.json";
  set_key(cfg, key, value);
  std::vector<std::string> needles{cfg, "\"" + key + "\""};
  needles.insert(needles.end(), more);
  for (const auto& needle : needles) {
    wantest::expect_error([&] { load_model(d); }, {needle}, __FILE__, line);
    InspectOptions o;
    o.engine.parallel.devices = "cpu";
    wantest::expect_error([&] { inspect_model(d, o); }, {needle}, __FILE__, line);
  }
}
#define CONFIG_REFUSED(key, value, ...) config_refused(key, value, {__VA_ARGS__}, __LINE__)

std::string only_safetensors(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") return e.path().string();
  throw wantest::Failure{dir + ": no .safetensors file"};
}

}  // namespace

TEST(config_text_len_beyond_the_bound_is_refused_naming_the_key) {
  // What took a host down: a billion-token prompt length passed inspect and the first generate
  // grew to 23 GB. No tensor implies text_len (UMT5's relative positions take any length).
  CONFIG_REFUSED("text_len", "1000000000", "1000000000", "[1, 4096]", "prompt length");
  CONFIG_REFUSED("text_len", "0", "[1, 4096]");
  CONFIG_REFUSED("text_len", "-512", "-512");
  CONFIG_REFUSED("text_len", "512.5", "512.5", "integer");
  CONFIG_REFUSED("text_len", "\"512\"", "the string \"512\"");
  // The bound itself is accepted, and is what both report.
  const std::string d = copy_tiny("text-len-4096");
  set_key(d + "/config.json", "text_len", "4096");
  EXPECT(load_model(d).arch.dit.text_len == 4096);
  InspectOptions o;
  o.engine.parallel.devices = "cpu";
  EXPECT(inspect_model(d, o)["components"]["dit"]["arch"]["text_len"] == 4096);
}

TEST(config_num_heads_that_is_not_a_positive_integer_is_refused_naming_the_key) {
  CONFIG_REFUSED("num_heads", "\"two\"", "the string \"two\"", "integer");
  CONFIG_REFUSED("num_heads", "1.5", "the number 1.5", "integer");  // was "rope: ... odd axis dims"
  CONFIG_REFUSED("num_heads", "-2", "-2");
  CONFIG_REFUSED("num_heads", "0", "[1, 256]");
  CONFIG_REFUSED("num_heads", "1000", "[1, 256]");
}

TEST(config_num_heads_the_shapes_cannot_split_is_refused_naming_the_key) {
  // dim 256 / 3 heads: not a whole head.
  CONFIG_REFUSED("num_heads", "3", "not divisible by num_heads 3", "256");
  // dim 256 / 1 head = head dim 256, whose thirds (85) the 3-D RoPE cannot rotate in pairs.
  CONFIG_REFUSED("num_heads", "1", "head dim 256", "3-D RoPE", "(86, 85, 85)");
  // head dim 64: thirds of 21, the same.
  CONFIG_REFUSED("num_heads", "4", "head dim 64", "(22, 21, 21)");
}

TEST(config_eps_that_is_not_a_small_positive_number_is_refused_naming_the_key) {
  CONFIG_REFUSED("eps", "-1.0", "-1.0", "(0, 0.01]");
  CONFIG_REFUSED("eps", "0", "(0, 0.01]");
  CONFIG_REFUSED("eps", "0.5", "0.5");
  CONFIG_REFUSED("eps", "\"1e-6\"", "the string");
  CONFIG_REFUSED("eps", "null", "null");
  // 1e999 is not a JSON number anyone can hold: refused as JSON, naming the file.
  const std::string d = copy_tiny("eps-overflow");
  set_key(d + "/config.json", "eps", "1e999");
  REFUSED(d, d + "/config.json", "not valid JSON", "1e999");
}

TEST(config_counts_that_are_not_positive_integers_are_refused_naming_the_key) {
  CONFIG_REFUSED("dim", "256.0", "the number 256.0", "integer");
  CONFIG_REFUSED("ffn_dim", "\"512\"", "the string \"512\"");
  CONFIG_REFUSED("num_layers", "2.5", "2.5");
  CONFIG_REFUSED("num_layers", "-2", "-2");
  CONFIG_REFUSED("num_layers", "24", "= 24", "the tensor shapes give 2");
  CONFIG_REFUSED("model_type", "5", "must be a string", "the number 5");
  CONFIG_REFUSED("model_type", "\"i2v\"", "only t2v");
}

TEST(diffusers_config_values_are_named_as_the_file_spells_them) {
  const std::string d = copy_tiny("diffusers-heads", "diffusers");
  const std::string cfg = d + "/transformer/config.json";
  set_key(cfg, "num_attention_heads", "\"two\"");
  REFUSED(d, cfg, "\"num_attention_heads\"", "the string \"two\"");
  set_key(cfg, "num_attention_heads", "2");
  set_key(cfg, "attention_head_dim", "1.5");
  REFUSED(d, cfg, "\"attention_head_dim\"", "1.5");
  set_key(cfg, "attention_head_dim", "128");
  set_key(cfg, "patch_size", "[1, 4, 4]");
  REFUSED(d, cfg, "patch_size", "[1,4,4]", "[1,2,2]");
  set_key(cfg, "patch_size", "[1, 2, 2]");
  set_key(cfg, "eps", "-1");
  REFUSED(d, cfg, "\"eps\"", "-1");
  set_key(cfg, "eps", "1e-06");
  EXPECT(load_model(d).arch.dit.num_heads == 2);  // restored: loads again

  const std::string vcfg = d + "/vae/config.json";
  set_key(vcfg, "dim_mult", "[1, 2, 4, 8]");
  REFUSED(d, vcfg, "dim_mult", "[1,2,4,8]");
  set_key(vcfg, "dim_mult", "[1, 2, 4, 4]");
  const std::string tcfg = d + "/text_encoder/config.json";
  set_key(tcfg, "d_model", "\"64\"");
  REFUSED(d, tcfg, "\"d_model\"", "the string \"64\"");
}

TEST(sharded_index_weight_map_value_that_is_not_a_file_name_names_the_index_and_tensor) {
  const std::string d = copy_tiny("index-value", "sharded");
  const std::string index = d + "/diffusion_pytorch_model.safetensors.index.json";
  json j = json::parse(read_text_file(index));
  const std::string tensor = j["weight_map"].begin().key();
  j["weight_map"][tensor] = 5;  // was "[json.exception.type_error.302] type must be string, but is number"
  write_text(index, j.dump());
  REFUSED(d, index, "\"" + tensor + "\"", "the number 5");
}

TEST(json_nested_beyond_the_depth_limit_is_refused_naming_the_file) {
  const std::string d = copy_tiny("deep-config");
  write_text(d + "/config.json", "{\"dim\":" + std::string(512u << 10, '['));
  REFUSED(d, d + "/config.json", "nests deeper than the limit of 64");

  const std::string s = copy_tiny("deep-index", "sharded");
  const std::string index = s + "/diffusion_pytorch_model.safetensors.index.json";
  write_text(index, "{\"weight_map\":{\"x\":" + std::string(1u << 20, '['));
  REFUSED(s, index, "nests deeper than the limit of 64");

  // A DiT file whose header is 8 MiB of nesting (the report's 104 MB one drove inspect past 4 GB).
  const std::string h = copy_tiny("deep-header");
  std::string header = "{\"x\":" + std::string(8u << 20, '[');
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  write_text(h + "/diffusion_pytorch_model.safetensors", bytes + header);
  REFUSED(h, h + "/diffusion_pytorch_model.safetensors", "safetensors header", "nests deeper than the limit of 64");
}

TEST(json_beyond_the_size_limit_is_refused_before_it_is_read) {
  const std::string d = copy_tiny("big-config");
  json j = json::parse(read_text_file(d + "/config.json"));
  j["comment"] = std::string((1u << 20) + 1, 'x');
  write_text(d + "/config.json", j.dump());
  REFUSED(d, d + "/config.json", "over the 1 MiB limit");
}

TEST(integer_tensor_where_a_weight_is_expected_is_refused_naming_file_and_tensor) {
  // Was "place: tensor of integer dtype Byte is not a weight" at generate, after inspect said OK.
  const std::string d = copy_tiny("byte-weight");
  const std::string f = d + "/diffusion_pytorch_model.safetensors";
  TensorMap t = load_safetensors(f, false);
  t["blocks.0.norm3.weight"] = stored(at::zeros({256}, at::kByte));
  save_safetensors(f, t);
  REFUSED(d, f, "blocks.0.norm3.weight", "dtype U8", "floating point");
}

TEST(patch_with_a_zero_dim_is_refused_not_divided_by) {
  // An empty patch_embedding (pw = 0, no bytes) made the out_dim a division by zero.
  const std::string d = copy_tiny("zero-patch");
  const std::string f = d + "/diffusion_pytorch_model.safetensors";
  TensorMap t = load_safetensors(f, false);
  t["patch_embedding.weight"] = stored(at::zeros({256, 16, 1, 2, 0}));
  save_safetensors(f, t);
  REFUSED(d, f, "patch_embedding.weight", "[256, 16, 1, 2, 0]", "must all be positive");
}

TEST(layer_index_beyond_any_model_is_refused_naming_the_tensor) {
  const std::string d = copy_tiny("huge-index");
  const std::string f = d + "/diffusion_pytorch_model.safetensors";
  TensorMap t = load_safetensors(f, false);
  t["blocks.99999999999999999999.norm3.bias"] = stored(at::zeros({256}));  // was std::out_of_range from stoll
  save_safetensors(f, t);
  REFUSED(d, f, "blocks.99999999999999999999.norm3.bias", "layer index");
}

TEST(umt5_bucket_count_the_engine_refuses_is_refused_by_inspect_too) {
  // 31 buckets: the engine's UMT5 needs an even count; inspect used to pass it.
  const std::string d = copy_tiny("odd-buckets", "comfyui");
  const std::string f = only_safetensors(d + "/text_encoders");
  TensorMap t = load_safetensors(f, false);
  for (auto& [name, v] : t)
    if (name.find("relative_attention_bias") != std::string::npos) v = stored(at::zeros({31, 4}, at::kHalf));
  save_safetensors(f, t);
  REFUSED(d, f, "blocks.0.pos_embedding.embedding.weight", "31", "even");
}

TEST(vae_without_16_latent_channels_is_refused_by_inspect_too) {
  const std::string d = copy_tiny("vae-z8", "comfyui");
  const std::string f = only_safetensors(d + "/vae");
  VaeArch a = preset_arch("tiny").vae;
  a.z_dim = 8;
  TensorMap t;
  for (const auto& s : vae_specs(a)) t[s.name] = stored(at::zeros(s.shape));
  save_safetensors(f, t);
  REFUSED(d, f, "conv2.weight", "z_dim 8", "16 channels");
}

TEST(tokenizer_json_of_the_wrong_shape_is_refused_by_inspect_naming_the_key) {
  const std::string d = copy_tiny("bad-tokenizer");
  const std::string tok = d + "/google/umt5-xxl/tokenizer.json";
  EXPECT(fs::is_regular_file(tok));
  json j = json::parse(read_text_file(tok));
  j["added_tokens"] = json::array({{{"id", "five"}}});
  write_text(tok, j.dump());
  InspectOptions o;
  o.engine.parallel.devices = "cpu";
  EXPECT_ERROR(inspect_model(d, o), tok, "\"id\"", "the string \"five\"");
  write_text(tok, "{\"model\":" + std::string(1u << 20, '['));
  EXPECT_ERROR(inspect_model(d, o), tok, "nests deeper than the limit of 64");
}

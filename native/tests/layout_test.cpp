// Layouts: the same tiny model written in all four layouts loads to identical canonical tensors;
// bad directories and configs are refused with errors that name the problem.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/layout.h"
#include "tools/make_model.h"
#include "formats/safetensors.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/mapped_file.h"
#include "test.h"

namespace fs = std::filesystem;
using namespace wan;

namespace {
using wantest::tiny_model;
std::string tiny(const std::string& layout, uint64_t seed = 0) { return tiny_model(layout, seed); }
void expect_same(const TensorMap& a, const TensorMap& b, const std::string& what) {
  if (a.size() != b.size()) throw wantest::Failure{what + ": tensor counts differ"};
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) throw wantest::Failure{what + ": " + name + " missing"};
    if (!at::equal(to_float32(t), to_float32(it->second))) throw wantest::Failure{what + ": " + name + " differs"};
  }
}
std::string copy_model(const std::string& src, const std::string& name) {
  std::string dst = wantest::scratch_dir() + "/" + name;
  remove_tree(dst);
  fs::copy(src, dst, fs::copy_options::recursive);
  return dst;
}
void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
// Sets `key` of the JSON file at `path` to `value`, keeping the other keys.
void set_json(const std::string& path, const std::string& key, const nlohmann::json& value) {
  auto j = nlohmann::json::parse(read_text_file(path));
  j[key] = value;
  write(path, j.dump());
}
}  // namespace

TEST(layout_all_four_layouts_give_identical_canonical_tensors) {
  LoadedModel ref = load_model(tiny("official"));
  EXPECT(ref.files.layout == Layout::Official);
  EXPECT(ref.dit.at("patch_embedding.weight").dtype == DType::F32);   // as published
  EXPECT(ref.t5.at("token_embedding.weight").dtype == DType::BF16);
  EXPECT(ref.vae.at("conv1.weight").dtype == DType::F32);
  for (const char* layout : {"sharded", "diffusers", "comfyui"}) {
    LoadedModel m = load_model(tiny(layout));
    expect_same(ref.dit, m.dit, std::string(layout) + " dit");
    expect_same(ref.t5, m.t5, std::string(layout) + " t5");
    expect_same(ref.vae, m.vae, std::string(layout) + " vae");
    EXPECT(to_json(m.arch.dit) == to_json(ref.arch.dit));
    EXPECT(to_json(m.arch.t5) == to_json(ref.arch.t5));
    EXPECT(to_json(m.arch.vae) == to_json(ref.arch.vae));
  }
  EXPECT(load_model(tiny("sharded")).files.dit.files.size() >= 2);
  EXPECT(load_model(tiny("diffusers")).files.t5.files.size() >= 2);
}

TEST(layout_tiny_architecture_matches_the_preset) {
  LoadedModel m = load_model(tiny("official"));
  ModelArch p = preset_arch("tiny");
  EXPECT(to_json(m.arch.dit) == to_json(p.dit));
  EXPECT(to_json(m.arch.t5) == to_json(p.t5));
  EXPECT(to_json(m.arch.vae) == to_json(p.vae));
  EXPECT(m.dit.size() == 15 + 27 * size_t(p.dit.num_layers));
  EXPECT(m.vae.size() == 194);  // the Wan VAE's tensor count at any base dim
}

TEST(layout_real_dims_have_the_published_tensor_counts_and_params) {
  ModelArch a = preset_arch("1.3B"), b = preset_arch("14B");
  EXPECT(dit_specs(a.dit).size() == 825);
  EXPECT(count_params(dit_specs(a.dit)) == 1418996800);
  EXPECT(dit_specs(b.dit).size() == 1095);
  EXPECT(count_params(dit_specs(b.dit)) == 14288491584);
  EXPECT(t5_specs(a.t5).size() == 242);  // 24 blocks x 10 + embedding + final norm
  EXPECT(vae_specs(a.vae).size() == 194);
  EXPECT(count_params(vae_specs(a.vae)) == 126892531);
}

TEST(layout_same_seed_same_bytes_other_seed_other_values) {
  std::string a = tiny("official", 7), b = copy_model(a, "seed7-copy");
  remove_tree(b);
  MakeModelOptions o;
  o.seed = 7;
  make_model(b, o);
  for (const char* f : {"diffusion_pytorch_model.safetensors", "models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth"})
    EXPECT(read_text_file(a + "/" + f) == read_text_file(b + "/" + f));
  LoadedModel x = load_model(tiny("official", 0)), y = load_model(a);
  EXPECT(!at::equal(x.dit.at("blocks.0.ffn.0.weight").data, y.dit.at("blocks.0.ffn.0.weight").data));
}

TEST(layout_diffusers_and_comfy_key_names) {
  EXPECT(layout_key(Layout::Diffusers, Component::DiT, "blocks.3.norm3.weight") == "blocks.3.norm2.weight");
  EXPECT(layout_key(Layout::Diffusers, Component::DiT, "head.modulation") == "scale_shift_table");
  EXPECT(layout_key(Layout::Diffusers, Component::DiT, "blocks.0.modulation") == "blocks.0.scale_shift_table");
  EXPECT(layout_key(Layout::Diffusers, Component::DiT, "blocks.1.cross_attn.o.bias") == "blocks.1.attn2.to_out.0.bias");
  EXPECT(layout_key(Layout::ComfyUI, Component::DiT, "head.head.weight") == "model.diffusion_model.head.head.weight");
  EXPECT(layout_key(Layout::Diffusers, Component::T5, "blocks.5.ffn.gate.0.weight") ==
         "encoder.block.5.layer.1.DenseReluDense.wi_0.weight");
  EXPECT(layout_key(Layout::Diffusers, Component::VAE, "decoder.upsamples.7.time_conv.weight") ==
         "decoder.up_blocks.1.upsamplers.0.time_conv.weight");
  EXPECT(layout_key(Layout::Diffusers, Component::VAE, "decoder.upsamples.13.residual.6.bias") ==
         "decoder.up_blocks.3.resnets.1.conv2.bias");
  EXPECT(layout_key(Layout::Diffusers, Component::VAE, "encoder.downsamples.3.shortcut.weight") ==
         "encoder.down_blocks.3.conv_shortcut.weight");
  EXPECT(layout_key(Layout::Diffusers, Component::VAE, "conv1.bias") == "quant_conv.bias");
}

TEST(layout_unknown_directory_is_refused) {
  std::string d = wantest::scratch_dir() + "/not-a-model";
  fs::create_directories(d);
  write(d + "/readme.txt", "hello");
  EXPECT_THROWS(detect_layout(d), "is not a Wan2.1 model directory");
  EXPECT_THROWS(detect_layout(d + "/missing"), "does not exist");
}

TEST(layout_missing_component_file_is_named) {
  std::string d = copy_model(tiny("official"), "no-vae");
  fs::remove(d + "/Wan2.1_VAE.pth");
  EXPECT_THROWS(load_model(d), "Wan2.1_VAE.pth");
}

TEST(layout_config_disagreeing_with_shapes_names_both_values) {
  std::string d = copy_model(tiny("official"), "bad-config");
  set_json(d + "/config.json", "ffn_dim", 9999);
  EXPECT_THROWS(load_model(d), "config.json says \"ffn_dim\" = 9999 but the tensor shapes give 512");
  set_json(d + "/config.json", "ffn_dim", 512);
  set_json(d + "/config.json", "num_heads", 3);
  EXPECT_THROWS(load_model(d), "not divisible by num_heads 3");
}

TEST(layout_diffusers_config_disagreeing_is_refused) {
  std::string d = copy_model(tiny("diffusers"), "bad-diffusers-config");
  set_json(d + "/text_encoder/config.json", "num_layers", 24);
  EXPECT_THROWS(load_model(d), "config.json says \"num_layers\" = 24 but the tensor shapes give 2");
}

TEST(layout_wrong_shape_and_unexpected_tensor_are_named) {
  std::string d = copy_model(tiny("comfyui"), "bad-comfy");
  std::string f = d + "/diffusion_models/wan2.1_t2v_tiny_bf16.safetensors";
  TensorMap t = load_safetensors(f, false);
  t["model.diffusion_model.blocks.1.ffn.2.bias"] = stored(at::zeros({7}, at::kBFloat16));
  save_safetensors(f, t);
  EXPECT_THROWS(load_model(d), "blocks.1.ffn.2.bias has shape [7], expected [256]");
  t = load_safetensors(f, false);
  t.erase("model.diffusion_model.blocks.1.ffn.2.bias");
  save_safetensors(f, t);
  EXPECT_THROWS(load_model(d), "blocks.1.ffn.2.bias is missing");

  std::string d2 = copy_model(tiny("diffusers"), "bad-diffusers-key");
  std::string f2 = d2 + "/vae/diffusion_pytorch_model.safetensors";
  TensorMap v = load_safetensors(f2, false);
  v["decoder.mystery.weight"] = stored(at::zeros({1}));
  save_safetensors(f2, v);
  EXPECT_THROWS(load_model(d2), "unexpected tensor decoder.mystery.weight");
}

TEST(layout_mismatched_components_are_refused) {
  // A DiT whose text_dim differs from the T5's width: the pair cannot run together.
  std::string d = copy_model(tiny("official"), "mismatch");
  std::string f = d + "/diffusion_pytorch_model.safetensors";
  TensorMap t = load_safetensors(f, false);
  t["text_embedding.0.weight"] = stored(at::zeros({256, 32}));
  save_safetensors(f, t);
  EXPECT_THROWS(load_model(d), "expects text_dim 32 but the T5 encoder has dim 64");
}

#include "tools/make_model.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "checkpoint/layout.h"
#include "formats/pth.h"
#include "formats/safetensors.h"
#include "tools/tiny_tokenizer.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "models/random_weights.h"

namespace fs = std::filesystem;

namespace wan {

namespace {

// The published releases shard at these sizes (Wan's 14B DiT: ~10 GB; diffusers save_pretrained: 5 GB).
constexpr uint64_t kOfficialShardBytes = 10ull << 30;
constexpr uint64_t kDiffusersShardBytes = 5ull << 30;

void write_json(const fs::path& p, const nlohmann::json& j) {
  fs::create_directories(p.parent_path());
  std::string s = j.dump(2) + "\n";
  write_file_atomic(p.string(), s.data(), s.size());
}

uint64_t tensor_bytes(const TensorMap& t) {
  uint64_t n = 0;
  for (const auto& [_, v] : t) n += v.data.numel() * dtype_size(v.dtype);
  return n;
}

struct Writer {
  Layout layout;
  uint64_t seed;
  const MakeModelOptions& opts;
  int64_t total_params, done_params = 0;

  // Random canonical tensors of `specs`, renamed for the layout and cast to `dtype`. With
  // `scaled_f8`, the blocks' linear weights are written as ComfyUI's scaled fp8 writes them:
  // e4m3 bytes of w / scale, scale = max|w| / 448 (e4m3's largest value) stored beside the weight
  // as X.scale_weight (float32, shape []), and the `scaled_fp8` marker whose dtype names the type.
  TensorMap tensors(Component c, const std::vector<TensorSpec>& specs, at::ScalarType dtype, bool scaled_f8 = false) {
    TensorMap out;
    for (const auto& s : specs) {
      const std::string key = layout_key(layout, c, s.name);
      at::Tensor w = random_tensor(s, seed);
      if (!scaled_f8 || !is_block_linear_weight(s.name, int64_t(s.shape.size()))) {
        out[key] = stored(w.to(dtype));
        continue;
      }
      const float scale = w.abs().max().item<float>() / 448.0f;
      out[key] = {encode_f8((w / scale).clamp(-448.0f, 448.0f), DType::F8_E4M3), DType::F8_E4M3};
      out[key.substr(0, key.size() - 7) + ".scale_weight"] = stored(at::scalar_tensor(scale, at::kFloat));
    }
    if (scaled_f8) out[c == Component::DiT ? layout_key(layout, c, "scaled_fp8") : "scaled_fp8"] =
        {at::empty({0}, at::kByte), DType::F8_E4M3};
    return out;
  }
  void progress(const fs::path& file, const std::vector<TensorSpec>& specs) {
    if (opts.progress) opts.progress(file.string(), static_cast<double>(done_params) / total_params);
    done_params += count_params(specs);
  }
  // Single file, or shards of `max_bytes` once the tensors outgrow it (force_shards: always `force_shards` shards).
  void safetensors(const fs::path& dir, const std::string& name, const TensorMap& t, uint64_t max_bytes,
                   int force_shards = 0) {
    fs::create_directories(dir);
    uint64_t bytes = tensor_bytes(t);
    if (force_shards > 0) max_bytes = bytes / force_shards + 1;
    if (bytes > max_bytes || force_shards > 0)
      save_safetensors_sharded(dir.string(), name, t, max_bytes);
    else
      save_safetensors((dir / (name + ".safetensors")).string(), t);
  }
};

nlohmann::json official_config(const DitArch& a) {
  return {{"_class_name", "WanModel"}, {"_diffusers_version", "0.30.0"}, {"dim", a.dim},
          {"eps", a.eps},              {"ffn_dim", a.ffn_dim},          {"freq_dim", a.freq_dim},
          {"in_dim", a.in_dim},        {"model_type", "t2v"},           {"num_heads", a.num_heads},
          {"num_layers", a.num_layers}, {"out_dim", a.out_dim},         {"text_len", a.text_len}};
}

nlohmann::json diffusers_transformer_config(const DitArch& a) {
  return {{"_class_name", "WanTransformer3DModel"},
          {"_diffusers_version", "0.33.0.dev0"},
          {"added_kv_proj_dim", nullptr},
          {"attention_head_dim", a.dim / a.num_heads},
          {"cross_attn_norm", true},
          {"eps", a.eps},
          {"ffn_dim", a.ffn_dim},
          {"freq_dim", a.freq_dim},
          {"image_dim", nullptr},
          {"in_channels", a.in_dim},
          {"num_attention_heads", a.num_heads},
          {"num_layers", a.num_layers},
          {"out_channels", a.out_dim},
          {"patch_size", a.patch},
          {"qk_norm", "rms_norm_across_heads"},
          {"rope_max_seq_len", 1024},
          {"text_dim", a.text_dim}};
}

nlohmann::json diffusers_t5_config(const T5Arch& a) {
  return {{"architectures", {"UMT5EncoderModel"}},
          {"classifier_dropout", 0.0},
          {"d_ff", a.dim_ffn},
          {"d_kv", a.dim_attn / a.num_heads},
          {"d_model", a.dim},
          {"decoder_start_token_id", 0},
          {"dense_act_fn", "gelu_new"},
          {"dropout_rate", 0.1},
          {"eos_token_id", 1},
          {"feed_forward_proj", "gated-gelu"},
          {"initializer_factor", 1.0},
          {"is_encoder_decoder", true},
          {"is_gated_act", true},
          {"layer_norm_epsilon", 1e-06},
          {"model_type", "umt5"},
          {"num_decoder_layers", a.num_layers},
          {"num_heads", a.num_heads},
          {"num_layers", a.num_layers},
          {"pad_token_id", 0},
          {"relative_attention_max_distance", 128},
          {"relative_attention_num_buckets", a.num_buckets},
          {"scalable_attention", true},
          {"tie_word_embeddings", false},
          {"tokenizer_class", "T5Tokenizer"},
          {"torch_dtype", "bfloat16"},
          {"use_cache", true},
          {"vocab_size", a.vocab}};
}

nlohmann::json diffusers_vae_config(const VaeArch& a) {
  return {{"_class_name", "AutoencoderKLWan"},
          {"_diffusers_version", "0.33.0.dev0"},
          {"attn_scales", nlohmann::json::array()},
          {"base_dim", a.dim},
          {"dim_mult", a.dim_mult},
          {"dropout", 0.0},
          {"latents_mean", {-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
                            0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921}},
          {"latents_std", {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
                           1.5579, 1.6382, 1.1253, 2.8251, 1.916}},
          {"num_res_blocks", a.num_res_blocks},
          {"temperal_downsample", a.temporal_downsample},
          {"z_dim", a.z_dim}};
}

nlohmann::json diffusers_model_index() {
  return {{"_class_name", "WanPipeline"},
          {"_diffusers_version", "0.33.0.dev0"},
          {"scheduler", {"diffusers", "UniPCMultistepScheduler"}},
          {"text_encoder", {"transformers", "UMT5EncoderModel"}},
          {"tokenizer", {"transformers", "T5TokenizerFast"}},
          {"transformer", {"diffusers", "WanTransformer3DModel"}},
          {"vae", {"diffusers", "AutoencoderKLWan"}}};
}

nlohmann::json diffusers_scheduler_config() {
  return {{"_class_name", "UniPCMultistepScheduler"},
          {"_diffusers_version", "0.33.0.dev0"},
          {"flow_shift", 3.0},
          {"num_train_timesteps", 1000},
          {"prediction_type", "flow_prediction"},
          {"solver_order", 2},
          {"use_flow_sigmas", true}};
}

}  // namespace

void make_model(const std::string& out_dir, const MakeModelOptions& opts) {
  Layout layout;
  bool sharded = false, scaled_f8 = false;
  if (opts.layout == "official") {
    layout = Layout::Official;
  } else if (opts.layout == "sharded") {
    layout = Layout::Official, sharded = true;
  } else if (opts.layout == "diffusers") {
    layout = Layout::Diffusers;
  } else if (opts.layout == "comfyui") {
    layout = Layout::ComfyUI;
  } else if (opts.layout == "comfyui-fp8") {
    layout = Layout::ComfyUI, scaled_f8 = true;
  } else {
    fail("unknown layout '", opts.layout, "' (allowed: official, sharded, diffusers, comfyui, comfyui-fp8)");
  }
  ModelArch arch = preset_arch(opts.dims);
  fs::path out(out_dir);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    fail(out_dir, " already exists and is not an empty directory");
  fs::create_directories(out);

  auto dit = dit_specs(arch.dit), t5 = t5_specs(arch.t5), vae = vae_specs(arch.vae);
  Writer w{layout, opts.seed, opts, count_params(dit) + count_params(t5) + count_params(vae)};
  const bool tiny = opts.dims == "tiny";
  // The tokenizer first: the tiny T5's embedding must cover its vocabulary.
  fs::path tok_dir = layout == Layout::Official ? out / "google" / "umt5-xxl" : out / "tokenizer";
  if (tiny) {
    TokenizerFiles tf = write_tiny_tokenizer(tok_dir.string());
    if (tf.vocab_size > arch.t5.vocab)
      fail("internal: tiny tokenizer has ", tf.vocab_size, " tokens, more than the T5's ", arch.t5.vocab);
  }

  switch (layout) {
    case Layout::Official: {  // DiT f32 safetensors, T5 bf16 .pth, VAE f32 .pth (as published)
      write_json(out / "config.json", official_config(arch.dit));
      w.progress(out / "diffusion_pytorch_model.safetensors", dit);
      w.safetensors(out, "diffusion_pytorch_model", w.tensors(Component::DiT, dit, at::kFloat), kOfficialShardBytes,
                    sharded ? 3 : 0);
      w.progress(out / "models_t5_umt5-xxl-enc-bf16.pth", t5);
      save_pth((out / "models_t5_umt5-xxl-enc-bf16.pth").string(), w.tensors(Component::T5, t5, at::kBFloat16));
      w.progress(out / "Wan2.1_VAE.pth", vae);
      save_pth((out / "Wan2.1_VAE.pth").string(), w.tensors(Component::VAE, vae, at::kFloat));
      break;
    }
    case Layout::Diffusers: {  // transformer f32, text_encoder bf16 (sharded like save_pretrained), vae f32
      write_json(out / "model_index.json", diffusers_model_index());
      write_json(out / "scheduler" / "scheduler_config.json", diffusers_scheduler_config());
      write_json(out / "transformer" / "config.json", diffusers_transformer_config(arch.dit));
      w.progress(out / "transformer", dit);
      w.safetensors(out / "transformer", "diffusion_pytorch_model", w.tensors(Component::DiT, dit, at::kFloat),
                    kDiffusersShardBytes);
      write_json(out / "text_encoder" / "config.json", diffusers_t5_config(arch.t5));
      w.progress(out / "text_encoder", t5);
      w.safetensors(out / "text_encoder", "model", w.tensors(Component::T5, t5, at::kBFloat16), kDiffusersShardBytes,
                    tiny ? 2 : 0);
      write_json(out / "vae" / "config.json", diffusers_vae_config(arch.vae));
      w.progress(out / "vae", vae);
      w.safetensors(out / "vae", "diffusion_pytorch_model", w.tensors(Component::VAE, vae, at::kFloat), ~0ull);
      break;
    }
    case Layout::ComfyUI: {
      // One file per component, as Comfy-Org repacks them: DiT bf16, UMT5 fp16 (HF names), VAE
      // f32; comfyui-fp8: the DiT and UMT5 files of their scaled-fp8 repacks (block linears e4m3).
      const std::string dit_name = "wan2.1_t2v_" + opts.dims + (scaled_f8 ? "_fp8_scaled" : "_bf16") + ".safetensors";
      const std::string t5_name = scaled_f8 ? "umt5_xxl_fp8_e4m3fn_scaled.safetensors" : "umt5_xxl_fp16.safetensors";
      w.progress(out / "diffusion_models" / dit_name, dit);
      fs::create_directories(out / "diffusion_models");
      save_safetensors((out / "diffusion_models" / dit_name).string(),
                       w.tensors(Component::DiT, dit, at::kBFloat16, scaled_f8));
      w.progress(out / "text_encoders" / t5_name, t5);
      fs::create_directories(out / "text_encoders");
      save_safetensors((out / "text_encoders" / t5_name).string(), w.tensors(Component::T5, t5, at::kHalf, scaled_f8));
      w.progress(out / "vae" / "wan_2.1_vae.safetensors", vae);
      fs::create_directories(out / "vae");
      save_safetensors((out / "vae" / "wan_2.1_vae.safetensors").string(), w.tensors(Component::VAE, vae, at::kFloat));
      break;
    }
  }
  if (opts.progress) opts.progress("", 1.0);
}

}  // namespace wan

// Model directory layouts. Three are understood, detected from the files present:
//   official  — the Wan2.1 release: config.json, diffusion_pytorch_model.safetensors (or its
//               -0000K-of-0000N shards + .index.json), models_t5_umt5-xxl-enc-bf16.pth,
//               Wan2.1_VAE.pth, google/umt5-xxl/ (tokenizer)
//   diffusers — Wan-AI/Wan2.1-T2V-*-Diffusers: model_index.json, transformer/, text_encoder/,
//               vae/, tokenizer/ with diffusers/transformers key names
//   comfyui   — ComfyUI repacks: diffusion_models/, text_encoders/, vae/ single safetensors files
//               (keys prefixed model.diffusion_model., HF-style UMT5 keys, optional scaled fp8)
// Every layout's keys map to one canonical set: the official Wan2.1 names (see checkpoint/arch.h).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/dtype.h"
#include "checkpoint/arch.h"

namespace wan {

enum class Layout { Official, Diffusers, ComfyUI };
enum class Component { DiT, T5, VAE };

const char* layout_name(Layout l);      // "official", "diffusers", "comfyui"
const char* component_name(Component c);  // "dit", "t5", "vae"

struct ComponentFiles {
  std::vector<std::string> files;  // weight files (shards in order)
  std::string index;               // sharded safetensors index, if any
  std::string config;              // the component's config.json, if any
};

struct ModelFiles {
  std::string dir;
  Layout layout = Layout::Official;
  ComponentFiles dit, t5, vae;
  std::string tokenizer_dir;  // holds tokenizer.json
  const ComponentFiles& component(Component c) const;
};

// Detects the layout of `dir`; an unknown directory is an error listing what each layout needs.
ModelFiles detect_layout(const std::string& dir);

// Loads one component and renames its keys to the canonical set. Unknown keys are errors naming
// the key and the file. A ComfyUI scaled-fp8 weight stays float8 with its scale_weight attached
// (StoredTensor::scale).
TensorMap load_component(const ModelFiles& m, Component c, bool mmap = true);

// The component's config.json (read within kConfigJson's limits) in official key names
// (diffusers keys translated, with their file names kept for errors); values null if it has none.
ComponentConfig load_component_config(const ModelFiles& m, Component c);

// Key name of canonical tensor `canonical` in `layout` (the inverse of what load_component does).
std::string layout_key(Layout layout, Component c, const std::string& canonical);

// A whole model: canonical tensors and the architecture read from them.
struct LoadedModel {
  ModelFiles files;
  TensorMap dit, t5, vae;
  ModelArch arch;
};
LoadedModel load_model(const std::string& dir, bool mmap = true);

}  // namespace wan

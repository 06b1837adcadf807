// The UMT5 text encoder of Wan2.1 (official wan/modules/t5.py T5Encoder, DiffSynth's
// WanTextEncoder): token embedding, num_layers pre-norm blocks of unscaled self-attention with a
// per-layer relative-position bias and a gated-GELU feed-forward, then a final RMS norm.
// Weights use the canonical (official) names of checkpoint/arch.h.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "common/dtype.h"
#include "checkpoint/arch.h"
#include "models/placement.h"

namespace wan {

class Umt5Encoder {
 public:
  // Checks `weights` against t5_specs(arch) (missing/extra/wrong-shape tensors are named) and
  // converts them once to the placement's dtype on its device. `offload`: they stay in host
  // memory (pinned, in the compute dtype) and each forward copies them to the device and frees
  // them after it, so a CUDA text encoder holds device memory only while it encodes.
  Umt5Encoder(const TensorMap& weights, const T5Arch& arch, const Placement& placement = {}, bool offload = false);

  // ids:  [B, L] int64 token ids in [0, vocab)
  // mask: [B, L] 0/1 (int64, int32 or bool); 0 marks padding, which no position attends to
  // -> [B, L, dim] float32 on the model's device. Padded positions get values too (they still
  // attend to the prompt). `before_layer(i, n)` (optional) runs before layer i (0-based) of n: the
  // engine's cancel point, which may throw to stop the forward.
  using LayerHook = std::function<void(int64_t layer, int64_t layers)>;
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask, const LayerHook& before_layer = {}) const;

  // forward, then every position at or past the prompt's length (the row's mask sum) set to 0,
  // as DiffSynth's encode_prompt does. The mask must be 1s then 0s, as a tokenizer pads.
  at::Tensor encode_prompt(const at::Tensor& ids, const at::Tensor& mask, const LayerHook& before_layer = {}) const;

  const T5Arch& arch() const { return arch_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  bool offloaded() const { return offload_; }

 private:
  struct Block {
    at::Tensor norm1, q, k, v, o;  // norm1: [dim]; q, k, v: [dim_attn, dim]; o: [dim, dim_attn]
    at::Tensor norm2, gate, fc1, fc2;  // gate, fc1: [dim_ffn, dim]; fc2: [dim, dim_ffn]
    at::Tensor pos;                    // [num_buckets, num_heads]
  };
  struct Weights {
    at::Tensor token_embedding;  // [vocab, dim]
    std::vector<Block> blocks;
    at::Tensor norm;             // [dim]
    std::vector<at::Tensor*> tensors();  // every tensor, in a fixed order
  };
  void check_inputs(const at::Tensor& ids, const at::Tensor& mask) const;
  // The weights on the device: the resident ones, or with offload a copy made for this call.
  Weights on_device() const;

  T5Arch arch_;
  at::ScalarType dtype_ = at::kFloat;  // compute dtype of every weight and activation
  at::Device device_{at::kCPU};
  bool offload_ = false;
  Weights weights_;  // on device_, or with offload in pinned host memory
};

// T5's bidirectional relative-position buckets for a length-L self-attention: [L, L] int64,
// entry (i, j) the bucket of key j seen from query i. Half the buckets are for keys after the
// query; within a half, distances below half of that are exact, larger ones log-spaced up to
// max_dist = 128, and everything beyond shares the last bucket.
at::Tensor t5_position_buckets(int64_t L, int64_t num_buckets);

}  // namespace wan

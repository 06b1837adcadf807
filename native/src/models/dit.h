// The Wan2.1 diffusion transformer (DiffSynth WanModel as model_fn_wan_video runs it, text-to-video).
//
//   latents [C_in, f, h, w] --Conv3d patch--> tokens x [L, D], L = (f/pt)(h/ph)(w/pw)
//   timestep --sinusoid(freq_dim)--> time_embedding --> t [D] --SiLU, time_projection--> t_mod [6, D]
//   context [Lc, text_dim] --text_embedding (Linear, tanh-GELU, Linear)--> [Lc, D]
//   N blocks: x += g1 * SelfAttn(mod(LN(x), t_mod), 3-D RoPE); x += CrossAttn(LN3(x), context);
//             x += g2 * FFN(mod(LN(x), t_mod))
//   head: Linear(mod(LN(x), t)) --unpatchify--> [C_out, f, h, w]
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "common/dit_shard.h"
#include "common/dtype.h"
#include "checkpoint/arch.h"
#include "models/placement.h"
#include "models/rope.h"

namespace wan {

// Reusing the blocks' residual (TeaCache, pipeline/tea_cache.h): one per CFG branch and rank, as
// the residual is of that branch's tokens. With `skip` the forward adds `residual` to the
// patchified tokens instead of running the blocks; otherwise it runs them and keeps their
// residual here for a later skipped step.
struct BlockSkip {
  bool skip = false;
  at::Tensor residual;  // [1, L or Ls, D] float32: the blocks' output minus their input
};

// What the engine watches inside one forward (pipeline/denoise.cpp); both optional.
//  - in_block(i, n): runs before block i (0-based) of n and, within it, between the query chunks
//    of its attentions (kernels/attention.h AttentionCheckScope): the engine's cancel point. It
//    may throw to stop the forward; nothing the forward holds outlives the throw.
//  - block_sums: gets one float32 scalar per computed block, the sum of the block's output (a
//    NaN or Inf anywhere makes it non-finite), queued on the device without a host sync. The
//    engine reads them only when a step's result is not finite, to name the first bad block.
struct DitHooks {
  std::function<void(int64_t block, int64_t blocks)> in_block;
  std::vector<at::Tensor>* block_sums = nullptr;
};

struct DitOptions {
  Placement placement;  // device and compute dtype (CPU: float32; CUDA: bfloat16)
  // CUDA only: how many parameters stay resident on the device (DiffSynth's
  // num_persistent_param_in_dit). The embeddings and the head always do; blocks are kept in order
  // while they fit, the rest live in pinned host memory and are copied in on a side stream one
  // block ahead of the compute, so at most two offloaded blocks are on the device at once.
  // -1: everything resident.
  int64_t persistent_params = -1;
  // Weight sharding across the ranks of a sequence-parallel group: this copy keeps part
  // `weight_shard` of `weight_shards` of every block's weights (flattened per dtype, padded to a
  // multiple of the shard count) and all-gathers each block's weights while the block before it
  // computes (DitShard::gather_weights), so a rank holds 1/N of the blocks plus the embeddings and
  // head, and at most two gathered blocks. 1: every weight local.
  int weight_shard = 0, weight_shards = 1;
};

class WanDiT {
 public:
  // `weights`: canonical names (checkpoint/arch.h dit_specs), any float dtype. Every tensor is checked
  // against the architecture, then converted once to the compute dtype on the device.
  WanDiT(const TensorMap& weights, const DitArch& arch, const DitOptions& options = {});

  // One denoising evaluation, batch 1.
  //   x: [in_dim, f, h, w] latents (any float dtype; f, h, w divisible by the patch)
  //   timestep: in [0, 1000], taken as float32 whatever the compute dtype
  //   context: [Lc, text_dim] text embeddings (the pipeline's zero-padded T5 output)
  // -> [out_dim, f, h, w] float32 (the flow-matching velocity)
  // `skip` (optional): TeaCache's residual, used or refreshed (BlockSkip).
  at::Tensor forward(const at::Tensor& x, double timestep, const at::Tensor& context, BlockSkip* skip = nullptr,
                     const DitHooks* hooks = nullptr) const;
  // The same evaluation, sequence-parallel: called SPMD on every rank of the shard's group, each
  // returns the whole [out_dim, f, h, w] result.
  at::Tensor forward(const at::Tensor& x, double timestep, const at::Tensor& context, const DitShard& shard,
                     BlockSkip* skip = nullptr, const DitHooks* hooks = nullptr) const;
  // The blocks' time modulation t_mod for `timestep`: [1, 6, D] float32 (what TeaCache compares).
  at::Tensor time_modulation(double timestep) const;

  const DitArch& arch() const { return arch_; }
  at::ScalarType compute_dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  int64_t resident_params() const { return resident_params_; }    // on the device for good
  int64_t offloaded_params() const { return offloaded_params_; }  // in pinned host memory
  int64_t offloaded_blocks() const { return offloaded_blocks_; }
  int weight_shards() const { return weight_shards_; }
  // Block linear weights kept as float8 bytes (a float8 checkpoint), and their type.
  int64_t f8_params() const { return f8_params_; }

  // LoRA working copies (models/lora_merge.h; models/lora_slots.cpp). base_tensor: the tensor
  // forward uses for canonical name `name` (checkpoint/arch.h dit_specs) as the base model has
  // it, in the compute dtype on its device (a float8 weight decoded; an offloaded block's in
  // host memory); an error naming it for an unknown name or a block sharded across ranks.
  at::Tensor base_tensor(const std::string& name) const;
  // Uses `t` (base_tensor's shape and dtype, on its device) for `name` from now on. The base
  // tensor is held aside, untouched, and restore_base() puts every one back as it was.
  void use_tensor(const std::string& name, const at::Tensor& t);
  // The same for any placement, sharded blocks included: `merged(w, begin, end)` gets float32
  // elements [begin, end) of the flattened base tensor `name` (all of them, or this rank's part
  // of a sharded block's) and returns their merged float32 values; they are rounded to the
  // tensor's dtype and used from now on (restore_base puts the base back).
  using Merge = std::function<at::Tensor(const at::Tensor& w, int64_t begin, int64_t end)>;
  void merge_tensor(const std::string& name, const Merge& merged);
  void restore_base();
  // Bytes of the tensors use_tensor installed (the working copies), per device copy of the DiT.
  int64_t working_bytes() const;

 private:
  struct Linear {
    at::Tensor w, b;  // w: [out, in], b: [out]
    // A float8 checkpoint's block linears keep their bytes (w in uint8 storage, 1 B per weight)
    // and are decoded to the compute dtype at each use (common/dtype.h decode_f8), times
    // `scale` (ComfyUI's scaled fp8; 1 otherwise).
    std::optional<DType> f8;
    float scale = 1.0f;
  };
  struct Attention {
    Linear q, k, v, o;
    at::Tensor norm_q, norm_k;  // RMSNorm weights over the full dim D
  };
  struct Block {
    Attention self_attn, cross_attn;
    at::Tensor norm3_w, norm3_b;  // affine LayerNorm before cross-attention (float32)
    Linear ffn0, ffn2;
    at::Tensor modulation;  // [1, 6, D] float32
    bool offloaded = false;  // the tensors above are in pinned host memory
    // Weight sharding: the tensors above are empty; parts[g] is this rank's slice of the flat
    // buffer of dtype group g (0: the compute dtype, 1: float32 when that differs, 2: float8
    // bytes), undefined where the group is empty.
    std::vector<at::Tensor> parts;
    std::vector<at::Tensor*> tensors();  // every tensor, in a fixed order
  };
  // Where each of Block::tensors() lives in the flat per-dtype buffers (the same for every block).
  struct FlatSlot {
    int group = 0;
    int64_t offset = 0;
    std::vector<int64_t> shape;
  };
  // A sharded block's all-gathers, started (one per dtype group) ...
  std::vector<DitShard::Waiter> start_gather(const Block& local, const DitShard& shard) const;
  // ... and the block they give: views into the gathered buffers.
  Block gathered_block(const Block& local, const std::vector<DitShard::Waiter>& gathering) const;
  // An offloaded block's copy on the device (after `wait`), built from an AsyncCopy.
  Block staged_block(const Block& host, const std::vector<at::Tensor>& device_tensors) const;

  // shard null: one rank. Else this rank's tokens of a padded sequence of `tokens` real ones.
  at::Tensor forward_impl(const at::Tensor& x, double timestep, const at::Tensor& context, const DitShard* shard,
                          BlockSkip* skip, const DitHooks* hooks) const;
  // The time embedding t [1, D] and the blocks' modulation t_mod [1, 6, D], float32.
  std::pair<at::Tensor, at::Tensor> time_embedding(double timestep) const;
  // x_blocks: [1, L or Ls, D] the blocks' output -> [out_dim, f, h, w] float32 (with a shard, after
  // the one all-gather of the group).
  at::Tensor head_and_unpatchify(const at::Tensor& x_blocks, const at::Tensor& t, const DitShard* shard, int64_t tokens,
                                 int64_t F, int64_t H, int64_t W) const;
  // x: [1, L, D] -> [1, L, D]
  at::Tensor self_attention(const Attention& a, const at::Tensor& x, const RopeTable& rope, const DitShard* shard,
                            int64_t tokens) const;
  // x: [1, L, D], ctx: [1, Lc, D] -> [1, L, D]
  at::Tensor cross_attention(const Attention& a, const at::Tensor& x, const at::Tensor& ctx) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const;
  at::Tensor weight(const Linear& l) const;  // in the compute dtype
  RopeTable rope_for(int64_t f, int64_t h, int64_t w) const;

  DitArch arch_;
  at::ScalarType dtype_ = at::kFloat;  // compute dtype of the weights and the matmul activations
  at::Device device_{at::kCPU};
  int64_t resident_params_ = 0, offloaded_params_ = 0, offloaded_blocks_ = 0;
  int weight_shards_ = 1, weight_shard_ = 0;
  int64_t f8_params_ = 0;
  std::vector<FlatSlot> flat_layout_;
  std::array<int64_t, 3> flat_numel_{0, 0, 0};  // per dtype group, before padding
  at::Tensor patch_w, patch_b;  // [D, in_dim, pt, ph, pw], [D]
  Linear text0, text2, time0, time2, time_proj;
  std::vector<Block> blocks;
  Linear head;
  at::Tensor head_modulation;  // [1, 2, D] float32
  // LoRA: the base of each tensor use_tensor replaced (a float8 linear's bytes with its type and
  // scale), and where a name lives.
  struct SavedTensor {
    at::Tensor t;
    std::optional<DType> f8;
    float scale = 1.0f;
  };
  std::map<std::string, SavedTensor> lora_base_;
  std::map<std::pair<size_t, size_t>, at::Tensor> lora_base_parts_;  // (block, dtype group) -> base part
  at::Tensor* lora_slot(const std::string& name, Linear** linear, bool* offloaded, int64_t* block);
  mutable std::mutex rope_mu_;  // forward is const and may run on several rank threads at once
  mutable std::map<std::array<int64_t, 3>, RopeTable> rope_cache_;
};

// Whether every block linear weight of a DiT checkpoint is float8, so that WanDiT keeps them all
// at 1 B per weight (what the memory model counts; a partly float8 one is counted as if widened).
bool dit_keeps_f8(const TensorMap& weights);

}  // namespace wan

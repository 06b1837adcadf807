// Peak device memory of a generation, predicted from the architecture and the options (what
// `wanlab inspect --budget` prints; `wanlab-engine bench t2v` sets it beside the measured peaks).
// Bytes are the CUDA caching allocator's "allocated" (live tensors), per stage, for the device
// that holds the DiT's first rank:
//   resident  DiT weights kept on the device (all, or the persistent budget's blocks plus the
//             embeddings and head, or with sharded weights 1/sp of each block plus those; a
//             float8 checkpoint's block linears at 1 B per weight), the UMT5 and the VAE when
//             they run there
//   encode    resident + UMT5 activations: per layer the position bias, scores and probabilities
//             [heads, Lt, Lt] (bf16, float32 softmax) and the gated FFN [Lt, dim_ffn]
//   denoise   resident + two streamed blocks when offloading or sharding (the one computing and
//             the next one arriving) + the DiT's peak activations: in the self-attention
//             sublayer, per token and channel: the float32 residual (4 B), the modulated input
//             (2), q, k, v (6), k before RoPE (2), RoPE's float32 complex in and
//             out (8) and its result (2) = 24 B; in the FFN 4 + 2 + 2 + 2 F/D; whichever is larger,
//             times the rank's tokens L/sp and the model dim D; with TeaCache 4 B more per CFG
//             branch (one branch's kept residual while the other's input is copied). The 24 B
//             are ATen's RoPE path; the own RoPE kernel (bf16 in and out) needs 16, and the
//             model keeps the larger so a budget holds when the kernel is unavailable: with it,
//             on an H200, 14B 720p 9.29 GB predicted against 6.31 measured, the stage's peak 6 % high
//   decode    resident + the VAE decoder's activations for a chunk of 4 frames, linear in the
//             tile's pixels (untiled: the frame), 5.3 KiB per output pixel in bf16 (2 B/value)
//   (video-to-video: the encode stage also encodes the input video, after the prompts; its
//   activations are taken as the decoder's for the same pixels: on an H200, 1.3B 480p with the
//   text encoder on the CPU, the encode stage 7.32 GB predicted, 7.08 measured)
// Weights are bf16 on CUDA (2 B/param); a CPU device computes in float32 (4 B). An offloaded
// text encoder (--t5-offload) holds its weights on the device in the encode stage only.
// With the DiT on a GPU, host_* count what stays in the host's memory: the streamed DiT blocks,
// pinned, in the compute dtype (host_pinned); an offloaded text encoder, pinned, in the compute
// dtype (host_t5); a text encoder or VAE placed on the CPU, in float32 (4 B/param), with the
// larger of their activations (UMT5's while encoding, the decoder's while decoding). On a
// CPU engine every figure above is host memory already and host_* stay 0.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "checkpoint/arch.h"

namespace wan {

struct MemoryPlanOptions {
  int height = 480, width = 832, num_frames = 81;
  int sequence_parallel = 1;      // ulysses x ring: the DiT's tokens are split over this many ranks
  int64_t persistent_params = -1; // -1: every DiT weight resident
  bool shard_weights = false;     // each rank keeps 1/sequence_parallel of the blocks, gathers one at a time
  bool t5_on_device = true;       // false: --t5-device cpu
  bool t5_offload = false;        // the text encoder's weights come to the device only to encode (--t5-offload)
  bool vae_on_device = true;      // false: --vae-device elsewhere (then nothing of the VAE is here)
  bool tiled = false;
  int tile_h = 30, tile_w = 52;   // latent units (tiled decode)
  int bytes_per_value = 2;        // 2: bf16 (CUDA), 4: float32 (CPU)
  bool gpu = false;               // the DiT computes on a GPU (host_* are counted apart)
  bool dit_f8 = false;            // the DiT's block linear weights stay float8 (1 B each), decoded per use
  // TeaCache: the CFG branches whose blocks' residual ([L/sp, D] float32) this rank keeps between
  // steps (pipeline/tea_cache.h); 0: off.
  int block_residuals = 0;
  // Video-to-video: the input video is VAE-encoded in the encode stage (after the prompts).
  bool encode_video = false;
  // Ranks of the group whose DiT work shares this device's memory: CPU ranks are threads of one
  // host (their activations and gathered blocks add up, as do their shards with sharded weights;
  // unsharded they share one DiT); a GPU holds one rank.
  int ranks_on_device = 1;
  // LoRA working copies (models/lora_merge.h lora_working_bytes): held beside the base weights
  // while a request's LoRAs are on (once per DiT copy; CPU ranks share one).
  int64_t lora_bytes = 0;
};

struct MemoryPlan {
  int64_t dit_resident = 0, dit_streamed = 0, t5 = 0, vae = 0;
  int64_t t5_streamed = 0;  // an offloaded text encoder's weights: on the device while encoding only
  int64_t t5_activations = 0, dit_activations = 0, vae_activations = 0;
  int64_t vae_encode_activations = 0;  // video-to-video: while the input video is encoded
  int64_t host_pinned = 0, host_t5 = 0, host_vae = 0, host_activations = 0;
  int64_t host() const { return host_pinned + host_t5 + host_vae + host_activations; }
  int64_t dit_lora = 0;  // LoRA working copies (MemoryPlanOptions::lora_bytes)
  int64_t resident() const { return dit_resident + dit_lora + t5 + vae; }
  int64_t encode() const { return resident() + std::max(t5_streamed + t5_activations, vae_encode_activations); }
  int64_t denoise() const { return resident() + dit_streamed + dit_activations; }
  int64_t decode() const { return resident() + vae_activations; }
  int64_t peak() const;
};

MemoryPlan plan_memory(const ModelArch& a, const MemoryPlanOptions& o);

// Parameters of one DiT block: self and cross attention (4 linears with bias, RMSNorm weights of
// q and k), norm3's weight and bias, the FFN and the [6, D] modulation. `float32`: those the
// engine keeps in float32 whatever the compute dtype (norm3 and the modulation: models/dit.cpp).
struct BlockParams {
  int64_t total, float32;
};
BlockParams dit_block_params(const DitArch& a);
// A block sharded over `sp` ranks (DitOptions::weight_shards): models/dit.cpp flattens it into
// one buffer per dtype (the compute dtype's tensors, then the float32 ones; one buffer when the
// compute dtype is float32), each padded to a multiple of sp; every rank keeps and all-gathers
// `elements` of each. `bytes_per_element`: the compute dtype's (4 float32, 2 bf16/f16).
struct ShardPart {
  int64_t elements, bytes_per_element;
};
std::vector<ShardPart> dit_shard_parts(const DitArch& a, int64_t sp, int64_t bytes_per_element);
nlohmann::json to_json(const MemoryPlan& p);

// The largest persistent-parameter count whose predicted peak fits `budget_bytes`, or -1 when
// everything fits resident, or -2 when even no resident block fits.
int64_t persistent_params_for_budget(const ModelArch& a, MemoryPlanOptions o, int64_t budget_bytes);

// The longest video (4k + 1 frames, at most 1001) whose predicted peak fits `budget_bytes` at
// o's size and options: with every DiT weight resident, and with as many blocks streamed from
// host memory as it takes (a GPU; elsewhere the same as resident). 0: not even one frame fits.
struct LongestVideo {
  int resident = 0, streamed = 0;
};
LongestVideo longest_video(const ModelArch& a, MemoryPlanOptions o, int64_t budget_bytes);

// --budget auto for the DiT's device `d`: a GPU's total memory less 1.5 GB (the CUDA context, the
// libraries' workspaces and the allocator's cache: the budget holds activations too, so more than
// DiffSynth's 0.5 GiB for weights alone), or on the CPU the host's MemAvailable less 1 GB; `how`
// says which, for notes.
constexpr int64_t kAutoBudget = -2;
int64_t auto_memory_budget(const at::Device& d, std::string* how);

// "12.35 GB" (10^9 bytes, as --budget 24G counts them; "99.8 MB" below 1 GB), and a plan's
// stages: "encode 14.80 GB, denoise 15.70 GB, decode 18.80 GB".
std::string gb_text(int64_t bytes);
std::string stages_text(const MemoryPlan& p);

}  // namespace wan

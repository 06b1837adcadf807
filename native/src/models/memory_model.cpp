#include "models/memory_model.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "common/cuda.h"
#include "common/error.h"
#include "common/proc_status.h"
#include "models/latent_grid.h"

namespace wan {

namespace {
// Bytes of VAE decoder activations per output pixel of a 4-frame chunk in bf16: measured on an
// H200 (480x832 untiled decode: 4.23 GB above the resident weights = 10.6 kB per pixel at 2 B
// per value) and written as a per-pixel constant so it scales with the tile or frame size.
constexpr double kVaeDecodeBytesPerPixelPerByte = 10590.0 / 2.0;

int64_t block_params(const DitArch& a) { return dit_block_params(a).total; }
// Of those, the linear weights (what a float8 checkpoint keeps as float8).
int64_t block_linear_weights(const DitArch& a) { return 2 * 4 * a.dim * a.dim + 2 * a.dim * a.ffn_dim; }
}  // namespace

BlockParams dit_block_params(const DitArch& a) {
  const int64_t D = a.dim, F = a.ffn_dim;
  // self and cross attention: 4 linears each (D x D + bias), 2 RMSNorm weights each; norm3 (2 D);
  // FFN D -> F -> D with biases; modulation 6 D.
  return {2 * (4 * (D * D + D) + 2 * D) + 2 * D + (D * F + F) + (F * D + D) + 6 * D, 2 * D + 6 * D};
}

std::vector<ShardPart> dit_shard_parts(const DitArch& a, int64_t sp, int64_t bytes_per_element) {
  if (sp < 1) fail("dit_shard_parts: ", sp, " shards");
  const BlockParams p = dit_block_params(a);
  auto part = [&](int64_t n, int64_t e) { return ShardPart{(n + sp - 1) / sp, e}; };
  if (bytes_per_element == 4) return {part(p.total, 4)};
  return {part(p.total - p.float32, bytes_per_element), part(p.float32, 4)};
}

int64_t MemoryPlan::peak() const { return std::max({encode(), denoise(), decode()}); }

MemoryPlan plan_memory(const ModelArch& a, const MemoryPlanOptions& o) {
  MemoryPlan p;
  const int64_t B = o.bytes_per_value;
  const int64_t dit_params = count_params(dit_specs(a.dit));
  const int64_t per_block = block_params(a.dit);
  const int64_t outside = dit_params - per_block * a.dit.num_layers;  // embeddings, head
  const int64_t layers = a.dit.num_layers;
  // One block's bytes: its linear weights at 1 B each when they stay float8, the rest at B.
  const int64_t linear_w = block_linear_weights(a.dit);
  const int64_t block_bytes = o.dit_f8 ? linear_w + (per_block - linear_w) * B : per_block * B;
  const bool sharded = o.shard_weights && o.sequence_parallel > 1;
  int64_t kept = layers;  // blocks resident (whole, in order)
  if (sharded) {
    const int64_t n = o.sequence_parallel;
    p.dit_resident = outside * B + layers * ((block_bytes + n - 1) / n);
    p.dit_streamed = 2 * block_bytes;  // the block being computed and the next, gathered whole
  } else {
    if (o.persistent_params >= 0) {
      kept = 0;
      while (kept < layers && outside + (kept + 1) * per_block <= o.persistent_params) ++kept;
      if (kept < layers) p.dit_streamed = 2 * block_bytes;
    }
    p.dit_resident = outside * B + kept * block_bytes;
    if (o.gpu) p.host_pinned = (layers - kept) * block_bytes;
  }
  p.dit_lora = o.lora_bytes;
  // An offloaded text encoder (a CUDA one: the engine refuses it elsewhere) is pinned on the host
  // whichever GPU it encodes on, and on this one only while it encodes.
  const int64_t t5_params = count_params(t5_specs(a.t5)), t5_bytes = t5_params * B;
  p.t5 = o.t5_on_device && !o.t5_offload ? t5_bytes : 0;
  p.t5_streamed = o.t5_on_device && o.t5_offload ? t5_bytes : 0;

  p.vae = o.vae_on_device ? count_params(vae_specs(a.vae)) * B : 0;

  const int64_t Lt = a.dit.text_len;
  auto t5_activations = [&](int64_t b) { return Lt * Lt * a.t5.num_heads * (b + b + 4 + 4 + b) + Lt * a.t5.dim_ffn * b * 3; };
  p.t5_activations = o.t5_on_device ? t5_activations(B) : 0;

  const LatentGrid grid = latent_grid(o.num_frames, o.height, o.width);
  const int64_t h = grid.height, w = grid.width, tokens = grid.tokens(a.dit.patch);
  const int64_t L = (tokens + o.sequence_parallel - 1) / o.sequence_parallel;
  const double D = double(a.dit.dim), F = double(a.dit.ffn_dim);
  const double attn = 4 + B + 3 * B + B + 8 + B;          // per token x channel, see the header
  const double ffn = 4 + B + B + B * F / D;
  p.dit_activations = int64_t(double(L) * D * std::max(attn, ffn));
  if (o.dit_f8) p.dit_activations += a.dit.ffn_dim * a.dit.dim * B;  // a float8 linear decoded for its use
  p.dit_activations += int64_t(o.block_residuals) * L * a.dit.dim * 4;
  if (o.ranks_on_device > 1) {
    const int64_t k = o.ranks_on_device;
    p.dit_activations *= k, p.dit_streamed *= k;
    if (sharded) p.dit_resident *= k;  // a DiT per rank, each holding its shard
  }

  const int64_t th = o.tiled ? std::min<int64_t>(h, o.tile_h) : h, tw = o.tiled ? std::min<int64_t>(w, o.tile_w) : w;
  auto vae_activations = [&](int64_t b) { return int64_t(kVaeDecodeBytesPerPixelPerByte * b * double(th * 8) * double(tw * 8)); };
  p.vae_activations = o.vae_on_device ? vae_activations(B) : 0;
  p.vae_encode_activations = o.encode_video ? p.vae_activations : 0;
  if (o.gpu) {  // what computes on the CPU beside the GPU does so in float32
    p.host_t5 = o.t5_offload ? t5_bytes : o.t5_on_device ? 0 : t5_params * 4;
    p.host_vae = o.vae_on_device ? 0 : count_params(vae_specs(a.vae)) * 4;
    p.host_activations = std::max(o.t5_on_device || o.t5_offload ? 0 : t5_activations(4), o.vae_on_device ? 0 : vae_activations(4));
  }
  return p;
}

nlohmann::json to_json(const MemoryPlan& p) {
  return {{"dit_resident_bytes", p.dit_resident}, {"dit_streamed_bytes", p.dit_streamed},
          {"dit_lora_bytes", p.dit_lora},
          {"t5_bytes", p.t5},                     {"t5_streamed_bytes", p.t5_streamed},
          {"vae_bytes", p.vae},
          {"t5_activation_bytes", p.t5_activations}, {"dit_activation_bytes", p.dit_activations},
          {"vae_activation_bytes", p.vae_activations}, {"vae_encode_activation_bytes", p.vae_encode_activations},
          {"resident_bytes", p.resident()},
          {"encode_peak_bytes", p.encode()},      {"denoise_peak_bytes", p.denoise()},
          {"decode_peak_bytes", p.decode()},      {"peak_bytes", p.peak()},
          {"host_pinned_bytes", p.host_pinned},   {"host_t5_bytes", p.host_t5},
          {"host_vae_bytes", p.host_vae},         {"host_activation_bytes", p.host_activations},
          {"host_bytes", p.host()}};
}

int64_t persistent_params_for_budget(const ModelArch& a, MemoryPlanOptions o, int64_t budget_bytes) {
  o.persistent_params = -1;
  if (plan_memory(a, o).peak() <= budget_bytes) return -1;
  const int64_t per_block = block_params(a.dit);
  const int64_t outside = count_params(dit_specs(a.dit)) - per_block * a.dit.num_layers;
  for (int64_t k = a.dit.num_layers - 1; k >= 0; --k) {
    o.persistent_params = outside + k * per_block;
    if (plan_memory(a, o).peak() <= budget_bytes) return o.persistent_params;
  }
  return -2;
}

LongestVideo longest_video(const ModelArch& a, MemoryPlanOptions o, int64_t budget_bytes) {
  const bool can_stream = o.gpu && !(o.shard_weights && o.sequence_parallel > 1);
  // Both tests only get harder with more frames: the largest k passing each, by bisection.
  auto largest = [&](const std::function<bool(int)>& fits) {
    int lo = -1, hi = 250;  // frames = 4k + 1; lo passes (or -1), hi + 1 fails
    if (fits(hi)) return 4 * hi + 1;
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      (fits(mid) ? lo : hi) = mid;
    }
    return lo < 0 ? 0 : 4 * lo + 1;
  };
  LongestVideo v;
  v.resident = largest([&](int k) {
    o.num_frames = 4 * k + 1, o.persistent_params = -1;
    return plan_memory(a, o).peak() <= budget_bytes;
  });
  v.streamed = can_stream ? largest([&](int k) {
    o.num_frames = 4 * k + 1;
    return persistent_params_for_budget(a, o, budget_bytes) != -2;
  }) : v.resident;
  return v;
}

int64_t auto_memory_budget(const at::Device& d, std::string* how) {
  const int64_t have = d.is_cuda() ? cuda_memory_info(d).total : meminfo_bytes("MemAvailable:");
  const int64_t reserve = d.is_cuda() ? 1500000000 : 1000000000;
  if (have <= reserve)
    fail("memory budget auto: ", d.str(), " has ", gb_text(have), d.is_cuda() ? "" : " available", ", not more than the ",
         gb_text(reserve), " kept in reserve");
  if (how)
    *how = concat("auto: ", d.is_cuda() ? "the device's " : "the host's available ", gb_text(have), " less ", gb_text(reserve),
                  d.is_cuda() ? " for the CUDA context and the allocator's cache" : "");
  return have - reserve;
}

std::string gb_text(int64_t bytes) {
  char buf[32];
  if (bytes >= 1000000000) std::snprintf(buf, sizeof buf, "%.2f GB", double(bytes) / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

std::string stages_text(const MemoryPlan& p) {
  return "encode " + gb_text(p.encode()) + ", denoise " + gb_text(p.denoise()) + ", decode " + gb_text(p.decode());
}

}  // namespace wan

#include "models/dit.h"

#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <cmath>
#include <string>

#include "common/cuda.h"
#include "common/error.h"
#include "common/shape_str.h"
#include "kernels/layer_norm.h"
#include "kernels/attention.h"

namespace wan {

namespace {

// LayerNorm(x) * w + b in the compute dtype `dt`. x: [1, L, D] float32 (the residual), w, b: [D]
// float32. On CUDA bf16 one pass (kernels/layer_norm.h) once that kernel is ready on the device,
// else ATen's layer_norm and a cast.
at::Tensor norm_cast(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps, at::ScalarType dt) {
  const at::Tensor y = dt == at::kBFloat16 && x.is_cuda() ? kernels::try_layer_norm_bf16(x, w, b, eps) : at::Tensor();
  return y.defined() ? y : at::layer_norm(x, {x.size(-1)}, w, b, eps).to(dt);
}

// LN(x) * (1 + scale) + shift in `dt`, the adaLN modulation, as one LayerNorm whose affine weight
// and bias are (1 + scale) and shift (batch 1: both are per channel). shift/scale [1, 1, D].
at::Tensor norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                         at::ScalarType dt) {
  const int64_t D = x.size(-1);
  return norm_cast(x, (1 + scale).reshape({D}), shift.reshape({D}).contiguous(), eps, dt);
}

// gelu_tanh(x W^T + b). On CUDA in bf16/f16 through cuBLASLt's GELU epilogue (the tanh form):
// the hidden layer is written once instead of twice. x: [1, L, D], w: [F, D] -> [1, L, F]
at::Tensor linear_gelu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#if TORCH_VERSION_MAJOR >= 2
  if (x.is_cuda() && x.scalar_type() != at::kFloat) {
    const int64_t L = x.size(1);
    return at::_addmm_activation(b, x.reshape({L, x.size(2)}), w.t(), 1, 1, /*use_gelu=*/true).view({1, L, w.size(0)});
  }
#endif
  return at::gelu(at::linear(x, w, b), "tanh");
}

// DiffSynth sinusoidal_embedding_1d: [cos(t w_j), sin(t w_j)], w_j = 10000^(-j / (dim/2)), in
// float64, then cast to the dtype the timestep tensor had.
at::Tensor sinusoid(int64_t dim, double t, at::ScalarType dtype) {
  const int64_t half = dim / 2;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor w = at::pow(10000.0, -at::arange(half, f64).div(double(half)));  // [half]
  at::Tensor a = at::outer(at::full({1}, t, f64), w);                         // [1, half]
  return at::cat({at::cos(a), at::sin(a)}, 1).to(dtype);                       // [1, dim]
}

}  // namespace

std::vector<at::Tensor*> WanDiT::Block::tensors() {
  std::vector<at::Tensor*> t;
  for (Attention* a : {&self_attn, &cross_attn})
    for (Linear* l : {&a->q, &a->k, &a->v, &a->o}) t.push_back(&l->w), t.push_back(&l->b);
  t.push_back(&self_attn.norm_q), t.push_back(&self_attn.norm_k);
  t.push_back(&cross_attn.norm_q), t.push_back(&cross_attn.norm_k);
  t.push_back(&norm3_w), t.push_back(&norm3_b);
  t.push_back(&ffn0.w), t.push_back(&ffn0.b), t.push_back(&ffn2.w), t.push_back(&ffn2.b);
  t.push_back(&modulation);
  return t;
}

WanDiT::Block WanDiT::staged_block(const Block& host, const std::vector<at::Tensor>& device_tensors) const {
  Block b = host;
  std::vector<at::Tensor*> slots = b.tensors();
  if (slots.size() != device_tensors.size()) fail("WanDiT: staged block has ", device_tensors.size(), " tensors, expected ", slots.size());
  for (size_t i = 0; i < slots.size(); ++i) *slots[i] = device_tensors[i];
  b.offloaded = false;
  return b;
}

// The RoPE table of an (f, h, w) grid on this DiT's device, computed once per grid: float64 on
// the CPU (bit-exact with DiffSynth), float32 on a GPU.
RopeTable WanDiT::rope_for(int64_t f, int64_t h, int64_t w) const {
  std::lock_guard<std::mutex> lock(rope_mu_);
  const std::array<int64_t, 3> key{f, h, w};
  auto it = rope_cache_.find(key);
  if (it != rope_cache_.end()) return it->second;
  RopeTable t = rope_table(arch_.dim / arch_.num_heads, f, h, w);
  if (!device_.is_cpu()) t = {t.cos.to(device_, at::kFloat), t.sin.to(device_, at::kFloat), {}};
  if (rope_cache_.size() >= 8) rope_cache_.clear();  // a sweep over many sizes does not grow it forever
  return rope_cache_.emplace(key, t).first->second;
}

std::vector<DitShard::Waiter> WanDiT::start_gather(const Block& local, const DitShard& shard) const {
  if (!shard.gather_weights)
    fail("WanDiT: weights are sharded ", weight_shards_, " ways; the forward needs its group's gather_weights");
  std::vector<DitShard::Waiter> w;
  for (const at::Tensor& part : local.parts)
    w.push_back(part.defined() ? shard.gather_weights(part) : DitShard::Waiter([] { return at::Tensor(); }));
  return w;
}

WanDiT::Block WanDiT::gathered_block(const Block& local, const std::vector<DitShard::Waiter>& gathering) const {
  std::array<at::Tensor, 3> full;
  for (size_t g = 0; g < gathering.size(); ++g)
    if (at::Tensor t = gathering[g](); t.defined()) full[g] = t.reshape({-1});  // [N * S]
  Block b = local;
  std::vector<at::Tensor*> slots = b.tensors();
  for (size_t i = 0; i < slots.size(); ++i) {
    const FlatSlot& f = flat_layout_[i];
    int64_t n = 1;
    for (int64_t d : f.shape) n *= d;
    *slots[i] = full[f.group].narrow(0, f.offset, n).view(f.shape);
  }
  b.parts.clear();
  return b;
}

WanDiT::WanDiT(const TensorMap& weights, const DitArch& arch, const DitOptions& o)
    : arch_(arch), dtype_(o.placement.dtype), device_(o.placement.device), weight_shards_(o.weight_shards), weight_shard_(o.weight_shard) {
  if (o.weight_shards < 1 || o.weight_shard < 0 || o.weight_shard >= o.weight_shards)
    fail("WanDiT: weight shard ", o.weight_shard, " of ", o.weight_shards, " is not a valid part");
  if (o.weight_shards > 1 && o.persistent_params >= 0)
    fail("WanDiT: weight sharding (", o.weight_shards, " ways) and a persistent-parameter budget cannot be combined");
  if (arch.num_heads <= 0 || arch.dim % arch.num_heads != 0)
    fail("WanDiT: dim ", arch.dim, " is not divisible by num_heads ", arch.num_heads);
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16 && dtype_ != at::kHalf)
    fail("WanDiT: compute dtype must be float32, bfloat16 or float16, got ", dtype_);
  if (o.persistent_params >= 0 && !device_.is_cuda())
    fail("WanDiT: a persistent-parameter budget (", o.persistent_params, ") needs a CUDA device; the model is on ",
         device_.str());
  // Shapes and the exact tensor set, so a wrong checkpoint fails here and not mid-forward.
  check_specs(weights, dit_specs(arch), "WanDiT weights");
  c10::InferenceMode guard;
  const Placement compute = o.placement, f32{device_, at::kFloat};
  auto get = [&](const std::string& name, const Placement& p) { return place(weights.at(name), p); };
  auto linear = [&](const std::string& name) { return Linear{get(name + ".weight", compute), get(name + ".bias", compute), {}}; };
  // A block's linear: float8 weights stay float8 bytes on the device (decoded per use, weight()).
  auto block_linear = [&](const std::string& name) {
    const StoredTensor& w = weights.at(name + ".weight");
    if (!is_f8(w.dtype)) return linear(name);
    f8_params_ += w.data.numel();
    return Linear{w.data.to(device_).contiguous(), get(name + ".bias", compute), w.dtype, w.scale};
  };
  auto attention = [&](const std::string& p) {
    return Attention{block_linear(p + ".q"), block_linear(p + ".k"), block_linear(p + ".v"), block_linear(p + ".o"),
                     get(p + ".norm_q.weight", compute), get(p + ".norm_k.weight", compute)};
  };
  patch_w = get("patch_embedding.weight", compute);
  patch_b = get("patch_embedding.bias", compute);
  text0 = linear("text_embedding.0");
  text2 = linear("text_embedding.2");
  time0 = linear("time_embedding.0");
  time2 = linear("time_embedding.2");
  time_proj = linear("time_projection.1");
  head = linear("head.head");
  head_modulation = get("head.modulation", f32);
  int64_t n = 0;
  for (at::Tensor* t : {&patch_w, &patch_b, &text0.w, &text0.b, &text2.w, &text2.b, &time0.w, &time0.b, &time2.w,
                        &time2.b, &time_proj.w, &time_proj.b, &head.w, &head.b, &head_modulation})
    n += t->numel();
  resident_params_ = n;

  for (int64_t i = 0; i < arch.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    blocks.push_back(Block{attention(b + "self_attn"), attention(b + "cross_attn"), get(b + "norm3.weight", f32),
                           get(b + "norm3.bias", f32), block_linear(b + "ffn.0"), block_linear(b + "ffn.2"),
                           get(b + "modulation", f32), false, {}});
    Block& blk = blocks.back();
    int64_t params = 0;
    for (at::Tensor* t : blk.tensors()) params += t->numel();
    if (o.weight_shards > 1) {
      // Flatten per dtype group, pad to a multiple of the shard count, keep this rank's slice.
      std::vector<at::Tensor*> ts = blk.tensors();
      if (flat_layout_.empty()) {
        for (at::Tensor* t : ts) {
          const int g = t->scalar_type() == dtype_ ? 0 : t->scalar_type() == at::kFloat ? 1 : 2;
          flat_layout_.push_back({g, flat_numel_[g], t->sizes().vec()});
          flat_numel_[g] += t->numel();
        }
      }
      for (int g = 0; g < 3; ++g) {
        if (flat_numel_[g] == 0) {
          blk.parts.emplace_back();
          continue;
        }
        std::vector<at::Tensor> flat;
        for (size_t k = 0; k < ts.size(); ++k)
          if (flat_layout_[k].group == g) flat.push_back(ts[k]->reshape({-1}));
        at::Tensor buf = at::cat(flat);
        const int64_t S = (flat_numel_[g] + o.weight_shards - 1) / o.weight_shards;
        buf = at::constant_pad_nd(buf, {0, S * o.weight_shards - flat_numel_[g]});
        blk.parts.push_back(buf.narrow(0, int64_t(o.weight_shard) * S, S).clone());
      }
      for (at::Tensor* t : ts) *t = at::Tensor();
      resident_params_ += (params + o.weight_shards - 1) / o.weight_shards;
      continue;
    }
    if (o.persistent_params < 0 || resident_params_ + params <= o.persistent_params) {
      resident_params_ += params;
    } else {  // past the budget: to pinned host memory, streamed in during the forward
      for (at::Tensor* t : blk.tensors()) *t = pinned_copy(t->to(at::kCPU));
      blk.offloaded = true;
      offloaded_params_ += params;
      ++offloaded_blocks_;
    }
  }
}

bool dit_keeps_f8(const TensorMap& weights) {
  bool any = false;
  for (const auto& [name, t] : weights) {
    if (!is_block_linear_weight(name, t.data.dim())) continue;
    if (!is_f8(t.dtype)) return false;
    any = true;
  }
  return any;
}

// A scaled float8 weight is worth round(float32(byte value) * scale) in the compute dtype, as
// place() widens it (common/dtype.h to_float32). CUDA's elementwise multiply of a bf16/f16 tensor
// by a scalar computes in float32 and rounds once, so the decoded weight is scaled in place;
// libtorch's CPU kernels round the scalar to the tensor's dtype first, so there it is scaled in
// float32.
at::Tensor WanDiT::weight(const Linear& l) const {
  if (!l.f8) return l.w;
  if (l.scale == 1.0f) return decode_f8(l.w, *l.f8, dtype_);
  if (l.w.is_cuda() || dtype_ == at::kFloat) return decode_f8(l.w, *l.f8, dtype_).mul_(l.scale);
  return decode_f8(l.w, *l.f8, at::kFloat).mul_(l.scale).to(dtype_);
}

// DiffSynth RMSNorm: normalize in float32, cast back, then scale by the weight in the compute dtype.
// bf16/f16 on libtorch >= 2.4: ATen's fused rms_norm (float32 statistics, one rounding).
at::Tensor WanDiT::rms_norm(const at::Tensor& x, const at::Tensor& w) const {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (x.scalar_type() != at::kFloat) return at::rms_norm(x, {x.size(-1)}, w, arch_.eps);
#endif
  at::Tensor xf = x.to(at::kFloat);
  return (xf * at::rsqrt(xf.pow(2).mean(-1, true) + arch_.eps)).to(x.scalar_type()) * w;
}

at::Tensor WanDiT::self_attention(const Attention& a, const at::Tensor& x, const RopeTable& rope, const DitShard* shard,
                                  int64_t tokens) const {
  const int64_t L = x.size(1), H = arch_.num_heads, d = arch_.dim / H;
  // run_check_point(): the engine's cancel point between sublayers (DitHooks::in_block).
  at::Tensor q = rms_norm(at::linear(x, weight(a.q), a.q.b), a.norm_q).view({1, L, H, d});  // [1, L, H, d]
  run_check_point();
  at::Tensor k = rms_norm(at::linear(x, weight(a.k), a.k.b), a.norm_k).view({1, L, H, d});
  run_check_point();
  at::Tensor v = at::linear(x, weight(a.v), a.v.b).view({1, L, H, d});
  q = rope_apply(q, rope).transpose(1, 2);  // [1, H, L, d]
  k = rope_apply(k, rope).transpose(1, 2);
  run_check_point();
  at::Tensor o = shard ? shard->attention(q, k, v.transpose(1, 2), tokens)  // sequence-parallel
                       : attention(q, k, v.transpose(1, 2));
  o = o.transpose(1, 2).reshape({1, L, arch_.dim});  // [1, L, D]
  run_check_point();
  return at::linear(o, weight(a.o), a.o.b);
}

at::Tensor WanDiT::cross_attention(const Attention& a, const at::Tensor& x, const at::Tensor& ctx) const {
  const int64_t L = x.size(1), Lc = ctx.size(1), H = arch_.num_heads, d = arch_.dim / H;
  at::Tensor q = rms_norm(at::linear(x, weight(a.q), a.q.b), a.norm_q).view({1, L, H, d}).transpose(1, 2);      // [1, H, L, d]
  at::Tensor k = rms_norm(at::linear(ctx, weight(a.k), a.k.b), a.norm_k).view({1, Lc, H, d}).transpose(1, 2);   // [1, H, Lc, d]
  at::Tensor v = at::linear(ctx, weight(a.v), a.v.b).view({1, Lc, H, d}).transpose(1, 2);
  at::Tensor o = attention(q, k, v).transpose(1, 2).reshape({1, L, arch_.dim});  // [1, L, D]
  return at::linear(o, weight(a.o), a.o.b);
}

at::Tensor WanDiT::forward(const at::Tensor& x, double timestep, const at::Tensor& context, BlockSkip* skip,
                           const DitHooks* hooks) const {
  return forward_impl(x, timestep, context, nullptr, skip, hooks);
}

at::Tensor WanDiT::forward(const at::Tensor& x, double timestep, const at::Tensor& context,
                           const DitShard& shard, BlockSkip* skip, const DitHooks* hooks) const {
  if (shard.size < 1 || shard.rank < 0 || shard.rank >= shard.size)
    fail("WanDiT: shard ", shard.rank, " of ", shard.size, " is not a valid rank");
  if (shard.size > 1 && (!shard.attention || !shard.gather)) fail("WanDiT: a shard needs attention and gather");
  return forward_impl(x, timestep, context, shard.size > 1 ? &shard : nullptr, skip, hooks);
}

// Time: a float32 value, as the float32 pipeline passes it. (DiffSynth's bf16 pipeline rounds the
// timestep to bf16 first, 833.3 -> 832: a different point of the schedule, not a rounding of the
// result; we keep the schedule's value.) The sinusoid is cast to the compute dtype for the MLP;
// t and t_mod are then float32, as is all modulation.
std::pair<at::Tensor, at::Tensor> WanDiT::time_embedding(double timestep) const {
  if (!std::isfinite(timestep)) fail("WanDiT: timestep ", timestep, " is not finite");
  c10::InferenceMode guard;
  const double ts = at::scalar_tensor(timestep, at::kDouble).to(at::kFloat).item<double>();
  at::Tensor t = at::linear(sinusoid(arch_.freq_dim, ts, dtype_).to(device_), time0.w, time0.b);  // [1, D]
  t = at::linear(at::silu(t), time2.w, time2.b);                                                  // [1, D]
  at::Tensor t_mod = at::linear(at::silu(t), time_proj.w, time_proj.b).view({1, 6, arch_.dim}).to(at::kFloat);
  return {t.to(at::kFloat), t_mod};
}

at::Tensor WanDiT::time_modulation(double timestep) const { return time_embedding(timestep).second; }

at::Tensor WanDiT::forward_impl(const at::Tensor& x_in, double timestep, const at::Tensor& context,
                                const DitShard* shard, BlockSkip* skip, const DitHooks* hooks) const {
  const auto& A = arch_;
  const int64_t pt = A.patch[0], ph = A.patch[1], pw = A.patch[2], D = A.dim;
  if (x_in.dim() != 4) fail("WanDiT: latents x must be [in_dim, f, h, w], got ", shape_str(x_in.sizes()));
  if (x_in.size(0) != A.in_dim)
    fail("WanDiT: latents x have ", x_in.size(0), " channels but the model's in_dim is ", A.in_dim);
  if (x_in.size(1) % pt || x_in.size(2) % ph || x_in.size(3) % pw || x_in.size(1) == 0 || x_in.size(2) == 0 ||
      x_in.size(3) == 0)
    fail("WanDiT: latents x ", shape_str(x_in.sizes()), " (f, h, w) are not positive multiples of the patch (", pt,
         ", ", ph, ", ", pw, ")");
  if (context.dim() != 2 || context.size(0) == 0)
    fail("WanDiT: context must be [Lc, text_dim] with Lc > 0, got ", shape_str(context.sizes()));
  if (context.size(1) != A.text_dim)
    fail("WanDiT: context width ", context.size(1), " does not match the model's text_dim ", A.text_dim);
  if (!x_in.is_floating_point()) fail("WanDiT: latents x must be floating point, got ", x_in.scalar_type());
  if (!context.is_floating_point()) fail("WanDiT: context must be floating point, got ", context.scalar_type());
  if (skip && skip->skip && !skip->residual.defined())
    fail("WanDiT: asked to reuse the blocks' residual before any step computed one");

  c10::InferenceMode guard;
  const auto dev = device_;
  const auto [t, t_mod] = time_embedding(timestep);  // [1, D], [1, 6, D] float32

  // Text: [Lc, text_dim] -> [1, Lc, D]
  at::Tensor ctx = context.to(dev, dtype_).unsqueeze(0);
  ctx = at::linear(at::gelu(at::linear(ctx, text0.w, text0.b), "tanh"), text2.w, text2.b);

  // Patchify: [1, C, f, h, w] -> [1, D, F, H, W] -> [1, L, D]
  at::Tensor x = at::conv3d(x_in.to(dev, dtype_).unsqueeze(0), patch_w, patch_b, {pt, ph, pw});
  const int64_t F = x.size(2), H = x.size(3), W = x.size(4);
  // The residual stream is float32 whatever the compute dtype (the official Wan keeps it so under
  // autocast); each sublayer reads a rounded copy of it.
  x = x.flatten(2).transpose(1, 2).to(at::kFloat).contiguous();  // [1, L, D]

  // float64 on the CPU (bit-exact with DiffSynth's complex128 RoPE); float32 on a GPU, moved once
  // per forward instead of once per block.
  RopeTable rope = rope_for(F, H, W);
  const int64_t tokens = x.size(1);  // L
  if (shard) {
    // Pad to a multiple of the ranks (zero tokens; attention masks them as keys and their rows are
    // dropped after the gather), then keep this rank's Ls rows and RoPE rows.
    if (shard->size > tokens)
      fail("WanDiT: ", shard->size, " sequence-parallel ranks but only ", tokens, " tokens (",
           F, " x ", H, " x ", W, " patches)");
    const int64_t Ls = (tokens + shard->size - 1) / shard->size, pad = Ls * shard->size - tokens;
    if (pad > 0) {
      x = at::cat({x, at::zeros({1, pad, D}, x.options())}, 1);
      rope = {at::cat({rope.cos, at::ones({pad, rope.cos.size(1)}, rope.cos.options())}),
              at::cat({rope.sin, at::zeros({pad, rope.sin.size(1)}, rope.sin.options())}), {}};
    }
    x = x.narrow(1, shard->rank * Ls, Ls).contiguous();  // [1, Ls, D]
    rope = rope_slice(rope, shard->rank * Ls, (shard->rank + 1) * Ls);
  }
  if (dtype_ != at::kFloat) rope = rope_complex(rope, dev);

  // Offloaded blocks arrive one ahead on a side stream; the host waits for block i-1 to finish
  // before queueing copy i+1, so no more than two staged blocks are ever on the device.
  AsyncCopy prefetch;
  std::vector<std::shared_ptr<void>> done(blocks.size());
  auto start_copy = [&](size_t i) {
    Block b = blocks[i];  // handles only: tensors() takes a mutable block
    std::vector<at::Tensor> host;
    for (at::Tensor* w : b.tensors()) host.push_back(*w);
    prefetch = copy_to_device_async(host, dev);
  };
  if (skip && skip->skip) {  // TeaCache: the last computed step's residual instead of the blocks
    if (!skip->residual.sizes().equals(x.sizes()))
      fail("WanDiT: the kept residual ", shape_str(skip->residual.sizes()), " does not fit these tokens ",
           shape_str(x.sizes()));
    x.add_(skip->residual);
    return head_and_unpatchify(x, t, shard, tokens, F, H, W);
  }
  // Computing: the old residual goes now, and the input's copy becomes the new one in place
  // (-input + output, bitwise output - input), so a branch holds one [1, L, D] float32 at a time.
  if (skip) skip->residual = at::Tensor();
  at::Tensor x_before = skip ? x.clone() : at::Tensor();
  if (!blocks.empty() && blocks[0].offloaded) start_copy(0);
  // Sharded blocks: block i+1's all-gather runs while block i computes.
  std::vector<DitShard::Waiter> gathering;
  if (weight_shards_ > 1) {
    if (!shard) fail("WanDiT: weights are sharded ", weight_shards_, " ways; the forward must run on its group");
    if (!blocks.empty()) gathering = start_gather(blocks[0], *shard);
  }
  // The engine's check (DitHooks::in_block) before each block and inside its attentions.
  size_t block_now = 0;
  const std::function<void()> check_in_block = [&] { hooks->in_block(int64_t(block_now), int64_t(blocks.size())); };
  AttentionCheckScope check_scope(hooks && hooks->in_block ? &check_in_block : nullptr);
  try {
    for (size_t i = 0; i < blocks.size(); ++i) {
      block_now = i;
      if (hooks && hooks->in_block) check_in_block();
      Block staged;
      const Block* bp = &blocks[i];
      if (!bp->parts.empty()) {  // sharded: this block's weights from every rank
        std::vector<DitShard::Waiter> next;
        if (i + 1 < blocks.size()) next = start_gather(blocks[i + 1], *shard);
        staged = gathered_block(*bp, gathering);
        gathering = std::move(next);
        bp = &staged;
      }
      if (bp->offloaded) {
        prefetch.wait();
        staged = staged_block(*bp, prefetch.tensors);
        bp = &staged;
        prefetch = AsyncCopy();
      }
      if (i + 1 < blocks.size() && blocks[i + 1].offloaded) {
        if (i > 0) host_wait(done[i - 1]);
        start_copy(i + 1);
      }
      const Block& b = *bp;
      // [1, 6, D] -> six [1, 1, D] float32: shift/scale/gate for attention, then for the FFN.
      // The residual x is updated in place (x += gate * y): one pass instead of two, no new tensor.
      std::vector<at::Tensor> m = (b.modulation + t_mod).chunk(6, 1);
      at::Tensor h = norm_modulate(x, m[0], m[1], A.eps, dtype_);
      x.addcmul_(self_attention(b.self_attn, h, rope, shard, tokens), m[2]);
      run_check_point();
      x.add_(cross_attention(b.cross_attn, norm_cast(x, b.norm3_w, b.norm3_b, A.eps, dtype_), ctx));
      run_check_point();
      h = norm_modulate(x, m[3], m[4], A.eps, dtype_);
      h = linear_gelu(h, weight(b.ffn0), b.ffn0.b);
      run_check_point();
      h = at::linear(h, weight(b.ffn2), b.ffn2.b);
      x.addcmul_(h, m[5]);
      if (hooks && hooks->block_sums) hooks->block_sums->push_back(x.sum());  // [] float32, no host sync
      if (offloaded_blocks_ > 0) done[i] = mark_stream(dev);
    }
  } catch (...) {
    // Stopped (a cancel, an error): a block copy still in flight on the side stream must land
    // before its device memory goes back to the allocator. (A sharded block's all-gather may be
    // dropped unwaited: the device group is rebuilt after any failure.)
    if (prefetch.event) prefetch.wait();
    throw;
  }
  if (skip) skip->residual = x_before.neg_().add_(x);
  return head_and_unpatchify(x, t, shard, tokens, F, H, W);
}

at::Tensor WanDiT::head_and_unpatchify(const at::Tensor& x_blocks, const at::Tensor& t, const DitShard* shard,
                                       int64_t tokens, int64_t F, int64_t H, int64_t W) const {
  const auto& A = arch_;
  const int64_t pt = A.patch[0], ph = A.patch[1], pw = A.patch[2];
  // Head: modulated by t (before the 6-way projection), not t_mod.
  std::vector<at::Tensor> hm = (head_modulation + t.unsqueeze(1)).chunk(2, 1);  // shift, scale: [1, 1, D]
  at::Tensor x = at::linear(norm_modulate(x_blocks, hm[0], hm[1], A.eps, dtype_), head.w, head.b);  // [1, L, pt*ph*pw*C]
  if (shard) x = shard->gather(x).narrow(1, 0, tokens);  // [1, Ls, C'] -> [1, L, C']: the one all-gather

  // Unpatchify: 'b (f h w) (x y z c) -> b c (f x) (h y) (w z)'
  const int64_t C = A.out_dim;
  x = x.view({F, H, W, pt, ph, pw, C}).permute({6, 0, 3, 1, 4, 2, 5});
  return x.reshape({C, F * pt, H * ph, W * pw}).to(at::kFloat);
}

}  // namespace wan

// UMT5 encoder forward. Follows DiffSynth's WanTextEncoder op for op (which is the official
// wan/modules/t5.py with shared_pos=False) so float32 results agree to rounding:
//   x = token_embedding[ids]
//   per block: x += o(attn(rms(x) * norm1, bias = pos_bias(layer) | mask)); x += ffn(rms(x) * norm2)
//   out = rms(x) * norm
// T5 quirks kept on purpose: attention scores are not scaled by 1/sqrt(head_dim) (T5 folds that
// into its q init), the norm is RMS without mean subtraction or bias, and the FFN is
// fc2(fc1(x) * gelu_tanh(gate(x))).
#include "models/umt5.h"

#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "common/cuda.h"
#include "common/error.h"

namespace wan {

namespace {

constexpr double kNormEps = 1e-6;       // T5LayerNorm default, used by every norm in the encoder
constexpr int64_t kMaxDistance = 128;   // T5RelativeEmbedding max_dist, fixed in both sources

// RMS norm over the last dim: weight * x / sqrt(mean(x^2) + eps), the mean taken in float32 and
// the result cast to the weight's dtype (T5LayerNorm; both casts are no-ops in float32).
// x: [..., C], weight: [C]
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) {
  at::Tensor y = x * at::rsqrt(x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true) + kNormEps);
  return weight * y.to(weight.scalar_type());
}

// The reference writes the tanh GELU out by hand; ATen's fused tanh GELU is the same formula.
at::Tensor gelu_tanh(const at::Tensor& x) { return at::gelu(x, "tanh"); }

// torch.finfo(dtype).min, the reference's fill value for masked keys.
double lowest(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return std::numeric_limits<float>::lowest();
    case at::kBFloat16: return std::numeric_limits<c10::BFloat16>::lowest();
    case at::kHalf: return std::numeric_limits<c10::Half>::lowest();
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: fail("umt5: no attention fill value for compute dtype ", t);
  }
}

}  // namespace

at::Tensor t5_position_buckets(int64_t L, int64_t num_buckets) {
  if (num_buckets < 4 || num_buckets % 2 != 0)
    fail("umt5: num_buckets must be even and at least 4, got ", num_buckets);
  // rel: [L, L], key position minus query position
  at::Tensor pos = at::arange(L, at::kLong);
  at::Tensor rel = pos.unsqueeze(0) - pos.unsqueeze(1);
  // Bidirectional: the upper half of the buckets is for keys after the query.
  const int64_t half = num_buckets / 2;
  const int64_t max_exact = half / 2;
  at::Tensor buckets = rel.gt(0).to(at::kLong) * half;
  at::Tensor dist = rel.abs();
  // Log-spaced buckets, computed in float32 with the same ops as the reference so that the
  // truncation lands in the same bucket at the boundaries (16, 32, 64, 128 for 32 buckets).
  // Distances below max_exact (0 included, whose log is -inf) take the exact branch below.
  at::Tensor large = (at::log(dist.to(at::kFloat) / max_exact) /
                      std::log(double(kMaxDistance) / double(max_exact)) * (half - max_exact))
                         .to(at::kLong) + max_exact;
  large = at::clamp_max(large, half - 1);
  return buckets + at::where(dist.lt(max_exact), dist, large);
}

Umt5Encoder::Umt5Encoder(const TensorMap& weights, const T5Arch& arch, const Placement& p, bool offload)
    : arch_(arch), dtype_(p.dtype), device_(p.device), offload_(offload) {
  if (arch.shared_pos) fail("umt5: shared_pos=true (one position table for all layers) is not supported");
  if (arch.num_heads <= 0 || arch.dim_attn % arch.num_heads != 0)
    fail("umt5: dim_attn ", arch.dim_attn, " is not a multiple of num_heads ", arch.num_heads);
  check_specs(weights, t5_specs(arch), "umt5 encoder weights");
  // check_specs has named anything missing or misshapen, so at() cannot throw below.
  // bf16/f16/f8 weights are converted (a copy); float32 ones may keep aliasing the read-only
  // mapped checkpoint, which is fine as weights are never written.
  const Placement where = offload ? Placement{at::kCPU, p.dtype} : p;
  auto get = [&](const std::string& name) {
    at::Tensor t = place(weights.at(name), where);
    return offload && device_.is_cuda() ? pinned_copy(t) : t;
  };
  weights_.token_embedding = get("token_embedding.weight");
  for (int64_t i = 0; i < arch.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block b;
    b.norm1 = get(p + "norm1.weight");
    b.q = get(p + "attn.q.weight");
    b.k = get(p + "attn.k.weight");
    b.v = get(p + "attn.v.weight");
    b.o = get(p + "attn.o.weight");
    b.norm2 = get(p + "norm2.weight");
    b.gate = get(p + "ffn.gate.0.weight");
    b.fc1 = get(p + "ffn.fc1.weight");
    b.fc2 = get(p + "ffn.fc2.weight");
    b.pos = get(p + "pos_embedding.embedding.weight");
    weights_.blocks.push_back(std::move(b));
  }
  weights_.norm = get("norm.weight");
}

std::vector<at::Tensor*> Umt5Encoder::Weights::tensors() {
  std::vector<at::Tensor*> t{&token_embedding, &norm};
  for (Block& b : blocks)
    for (at::Tensor* x : {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2, &b.pos}) t.push_back(x);
  return t;
}

Umt5Encoder::Weights Umt5Encoder::on_device() const {
  Weights w = weights_;
  if (!offload_) return w;
  // Pinned host memory: the copies run at full PCIe rate; they are freed when `w` goes.
  for (at::Tensor* t : w.tensors()) *t = t->to(device_, t->scalar_type(), /*non_blocking=*/true);
  return w;
}

void Umt5Encoder::check_inputs(const at::Tensor& ids, const at::Tensor& mask) const {
  if (!ids.defined() || ids.dim() != 2)
    fail("umt5: ids must be [B, L], got ", ids.defined() ? ids.dim() : 0, " dims");
  if (ids.scalar_type() != at::kLong) fail("umt5: ids must be int64, got ", ids.scalar_type());
  if (!mask.defined() || mask.sizes() != ids.sizes())
    fail("umt5: mask must have the shape of ids ", ids.sizes(), ", got ",
         mask.defined() ? mask.sizes() : at::IntArrayRef{});
  at::ScalarType mt = mask.scalar_type();
  if (mt != at::kLong && mt != at::kInt && mt != at::kBool)
    fail("umt5: mask must be int64, int32 or bool, got ", mt);
  if (ids.size(0) == 0 || ids.size(1) == 0) fail("umt5: ids ", ids.sizes(), " are empty");
  if (mt != at::kBool) {
    at::Tensor bad = mask.ne(0).logical_and(mask.ne(1));
    if (bad.any().item<bool>()) {
      at::Tensor first = bad.nonzero()[0];
      int64_t b = first[0].item<int64_t>(), l = first[1].item<int64_t>();
      fail("umt5: mask values must be 0 or 1, mask[", b, ", ", l, "] = ", mask[b][l].item<int64_t>());
    }
  }
  at::Tensor bad = ids.lt(0).logical_or(ids.ge(arch_.vocab));
  if (bad.any().item<bool>()) {
    at::Tensor first = bad.nonzero()[0];
    int64_t b = first[0].item<int64_t>(), l = first[1].item<int64_t>();
    fail("umt5: token id ", ids[b][l].item<int64_t>(), " at ids[", b, ", ", l,
         "] is outside the vocabulary of ", arch_.vocab, " tokens");
  }
}

at::Tensor Umt5Encoder::forward(const at::Tensor& ids_in, const at::Tensor& mask_in, const LayerHook& before_layer) const {
  c10::NoGradGuard no_grad;
  check_inputs(ids_in, mask_in);
  const at::Device device = device_;
  const Weights w = on_device();
  at::Tensor ids = ids_in.to(device);
  at::Tensor keep = mask_in.to(device).ne(0);  // [B, L] bool
  const int64_t B = ids.size(0), L = ids.size(1);
  const int64_t n = arch_.num_heads, c = arch_.dim_attn / arch_.num_heads;

  // Padding keys are excluded by overwriting their bias with the lowest finite value (not -inf),
  // as the reference does: a row with every key masked then stays finite instead of NaN.
  // key_masked: [B, 1, 1, L]
  at::Tensor key_masked = keep.logical_not().view({B, 1, 1, L});
  // buckets: [L, L], the same for every layer; each layer has its own table.
  at::Tensor buckets = t5_position_buckets(L, arch_.num_buckets).to(device);

  // x: [B, L, dim]
  at::Tensor x = at::embedding(w.token_embedding, ids);
  for (size_t layer = 0; layer < w.blocks.size(); ++layer) {
    if (before_layer) before_layer(int64_t(layer), int64_t(w.blocks.size()));
    const Block& blk = w.blocks[layer];
    // bias: [B, n, L, L] = table[buckets] -> [L, L, n] -> [1, n, L, L], then masked per batch
    at::Tensor bias = at::embedding(blk.pos, buckets).permute({2, 0, 1}).unsqueeze(0);
    bias = bias.expand({B, n, L, L}).masked_fill(key_masked, lowest(bias.scalar_type()));

    // Self-attention. q, k, v: [B, n, L, c]
    at::Tensor h = rms_norm(x, blk.norm1);
    at::Tensor q = at::linear(h, blk.q).view({B, L, n, c}).transpose(1, 2);
    at::Tensor k = at::linear(h, blk.k).view({B, L, n, c}).transpose(1, 2);
    at::Tensor v = at::linear(h, blk.v).view({B, L, n, c}).transpose(1, 2);
    // scores: [B, n, L, L], no 1/sqrt(c) (T5)
    at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) + bias;
    at::Tensor p = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
    // attn: [B, L, dim_attn]
    at::Tensor attn = at::matmul(p, v).transpose(1, 2).reshape({B, L, n * c});
    x = x + at::linear(attn, blk.o);

    // Gated feed-forward: fc2(fc1(h) * gelu_tanh(gate(h))), hidden [B, L, dim_ffn]
    h = rms_norm(x, blk.norm2);
    x = x + at::linear(at::linear(h, blk.fc1) * gelu_tanh(at::linear(h, blk.gate)), blk.fc2);
    // (The reference clamps to the float16 range here, a no-op for float32 and bfloat16.)
  }
  return rms_norm(x, w.norm).to(at::kFloat);
}

at::Tensor Umt5Encoder::encode_prompt(const at::Tensor& ids, const at::Tensor& mask, const LayerHook& before_layer) const {
  c10::NoGradGuard no_grad;
  check_inputs(ids, mask);
  // lens: [B], the prompt length of each row (its </s> included)
  at::Tensor m = mask.ne(0).to(at::kLong).cpu();
  at::Tensor lens = m.sum(1);
  const int64_t B = ids.size(0), L = ids.size(1);
  at::Tensor positions = at::arange(L, at::kLong).unsqueeze(0);  // [1, L]
  at::Tensor prefix = positions.lt(lens.unsqueeze(1)).to(at::kLong);  // [B, L]
  if (!at::equal(prefix, m)) {
    int64_t b = prefix.ne(m).any(1).nonzero()[0].item<int64_t>();
    fail("umt5: encode_prompt needs each mask row to be 1s then 0s (tokenizer padding); row ", b,
         " is not");
  }
  at::Tensor out = forward(ids, mask, before_layer);
  // DiffSynth zeroes out[:, len:] in a loop over the batch, which for the batch of 1 it always
  // passes is this per-row zeroing (for several rows its loop would zero past the shortest).
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = lens[b].item<int64_t>();
    if (len < L) out[b].narrow(0, len, L - len).zero_();
  }
  return out;
}

}  // namespace wan

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

#include <vector>

#include "common/dtype.h"
#include "models/arch.h"
#include "models/rope.h"

namespace wan {

class WanDiT {
 public:
  // `weights`: canonical names (models/arch.h dit_specs), any float dtype. Every tensor is checked
  // against the architecture, then converted once to the compute dtype (float32 on CPU).
  WanDiT(const TensorMap& weights, const DitArch& arch);

  // One denoising evaluation, batch 1.
  //   x: [in_dim, f, h, w] latents (any float dtype; f, h, w divisible by the patch)
  //   timestep: in [0, 1000]; rounded to the compute dtype first, as DiffSynth passes it as a
  //             tensor of the pipeline dtype
  //   context: [Lc, text_dim] text embeddings (the pipeline's zero-padded T5 output)
  // -> [out_dim, f, h, w] float32 (the flow-matching velocity)
  at::Tensor forward(const at::Tensor& x, double timestep, const at::Tensor& context) const;

  const DitArch& arch() const { return arch_; }
  at::ScalarType compute_dtype() const { return dtype_; }

 private:
  struct Linear {
    at::Tensor w, b;  // w: [out, in], b: [out]
  };
  struct Attention {
    Linear q, k, v, o;
    at::Tensor norm_q, norm_k;  // RMSNorm weights over the full dim D
  };
  struct Block {
    Attention self_attn, cross_attn;
    at::Tensor norm3_w, norm3_b;  // affine LayerNorm before cross-attention
    Linear ffn0, ffn2;
    at::Tensor modulation;  // [1, 6, D]
  };

  // x: [1, L, D] -> [1, L, D]
  at::Tensor self_attention(const Attention& a, const at::Tensor& x, const RopeTable& rope) const;
  // x: [1, L, D], ctx: [1, Lc, D] -> [1, L, D]
  at::Tensor cross_attention(const Attention& a, const at::Tensor& x, const at::Tensor& ctx) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const;

  DitArch arch_;
  at::ScalarType dtype_ = at::kFloat;  // compute dtype; a CUDA bf16 path will set kBFloat16
  at::Tensor patch_w, patch_b;         // [D, in_dim, pt, ph, pw], [D]
  Linear text0, text2, time0, time2, time_proj;
  std::vector<Block> blocks;
  Linear head;
  at::Tensor head_modulation;  // [1, 2, D]
};

}  // namespace wan

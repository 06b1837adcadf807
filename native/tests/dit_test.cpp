// The DiT against DiffSynth's own WanModel (test/golden/make_dit.py), its attention against a
// direct softmax(q k^T / sqrt(d)) v, its RoPE against a direct complex rotation, and its input checks.
#include <cmath>
#include <complex>
#include <cstdio>

#include "checkpoint/layout.h"
#include "common/error.h"
#include "kernels/attention.h"
#include "models/dit.h"
#include "models/rope.h"
#include "golden.h"
#include "test.h"

using namespace wan;

namespace {

at::Tensor gold(const std::string& name) { return wantest::golden_float("dit", name); }

const WanDiT& tiny_dit() {
  static const LoadedModel m = load_model(wantest::tiny_model());
  static const WanDiT dit(m.dit, m.arch.dit);
  return dit;
}

// softmax(q k^T / sqrt(d)) v in float64, no chunks.
at::Tensor direct_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble);
  at::Tensor s = at::matmul(qd, kd.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  return at::matmul(at::softmax(s, -1), vd);
}

}  // namespace

TEST(dit_matches_diffsynth_golden_cases) {
  const WanDiT& dit = tiny_dit();
  EXPECT(dit.compute_dtype() == at::kFloat);
  for (const char* name : {"single_frame", "non_square", "small_t"}) {
    const std::string p = std::string(name) + ".";
    at::Tensor x = gold(p + "x"), ref = gold(p + "out");
    const double t = gold(p + "timestep").item<double>();
    at::Tensor out = dit.forward(x, t, gold(p + "context"));
    EXPECT(out.sizes() == ref.sizes());
    EXPECT(out.scalar_type() == at::kFloat);
    const double err = wantest::rel_l2(out, ref);
    std::printf("     dit %-12s x [%lld, %lld, %lld, %lld] t %-6g rel L2 %.3e\n", name, (long long)x.size(0),
                (long long)x.size(1), (long long)x.size(2), (long long)x.size(3), t, err);
    EXPECT(err <= 1e-4);
  }
}

TEST(dit_output_depends_on_timestep_and_context) {
  // Guards against a golden comparison passing with a dead branch: the inputs must matter.
  const WanDiT& dit = tiny_dit();
  at::Tensor x = gold("small_t.x"), ctx = gold("small_t.context");
  at::Tensor base = dit.forward(x, 3.2, ctx);
  EXPECT(wantest::rel_l2(dit.forward(x, 700.0, ctx), base) > 1e-2);
  EXPECT(wantest::rel_l2(dit.forward(x, 3.2, ctx * 2), base) > 1e-3);
}

TEST(dit_rope_table_is_diffsynths_bit_for_bit) {
  at::Tensor ref = wantest::golden_tensor("dit", "rope.freqs");  // [24, 64, 2] float64: DiffSynth freqs_cis, (2, 3, 4) grid
  RopeTable t = rope_table(128, 2, 3, 4);
  EXPECT(t.cos.scalar_type() == at::kDouble && t.size() == 24 && t.cos.size(1) == 64);
  EXPECT(at::equal(t.cos, ref.select(-1, 0)));
  EXPECT(at::equal(t.sin, ref.select(-1, 1)));
  RopeTable s = rope_slice(t, 5, 17);
  EXPECT(s.size() == 12 && at::equal(s.cos, t.cos.slice(0, 5, 17)));
  EXPECT_THROWS(rope_slice(t, 20, 30), "outside");
}

TEST(dit_rope_apply_equals_direct_complex_rotation) {
  // head_dim 12 -> frame 4 (2 pairs), height 4, width 4; grid (2, 3, 2).
  const int64_t f = 2, h = 3, w = 2, d = 12, B = 2, H = 3, L = f * h * w;
  const double theta = 10000.0;
  at::manual_seed(5);
  at::Tensor x = at::randn({B, L, H, d}, at::kDouble);
  at::Tensor got = rope_apply(x, rope_table(d, f, h, w));
  at::Tensor want = at::empty_like(x);
  auto X = x.accessor<double, 4>();
  auto Y = want.accessor<double, 4>();
  const int64_t dims[3] = {d - 2 * (d / 3), d / 3, d / 3};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const int64_t pos[3] = {l / (h * w), (l / w) % h, l % w};
      for (int64_t hh = 0; hh < H; ++hh) {
        int64_t pair = 0;
        for (int a = 0; a < 3; ++a)
          for (int64_t j = 0; j < dims[a] / 2; ++j, ++pair) {
            const double angle = pos[a] / std::pow(theta, 2.0 * j / dims[a]);
            std::complex<double> z(X[b][l][hh][2 * pair], X[b][l][hh][2 * pair + 1]);
            z *= std::polar(1.0, angle);
            Y[b][l][hh][2 * pair] = z.real();
            Y[b][l][hh][2 * pair + 1] = z.imag();
          }
      }
    }
  EXPECT((got - want).abs().max().item<double>() < 1e-12);
  // float32 input: computed in float64, returned in float32.
  at::Tensor g32 = rope_apply(x.to(at::kFloat), rope_table(d, f, h, w));
  EXPECT(g32.scalar_type() == at::kFloat);
  EXPECT(wantest::rel_l2(g32, want) < 1e-6);
  EXPECT_THROWS(rope_apply(x, rope_table(d, f, h, w + 1)), "tokens");
  EXPECT_THROWS(rope_table(10, 1, 1, 1), "odd");
}

TEST(dit_attention_chunked_equals_direct_softmax) {
  at::manual_seed(3);
  at::Tensor q = at::randn({2, 3, 37, 16}), k = at::randn({2, 3, 29, 16}), v = at::randn({2, 3, 29, 16});
  q = q * 2;  // sharper softmax
  at::Tensor want = direct_attention(q, k, v);
  for (int64_t rows : {0, 1, 5, 37, 100}) {
    at::Tensor got = wan::detail::attention_chunked(q, k, v, rows);
    EXPECT(got.sizes() == q.sizes() && got.scalar_type() == at::kFloat);
    EXPECT(wantest::rel_l2(got, want) < 1e-6);
  }
  EXPECT(wantest::rel_l2(attention(q, k, v), want) < 1e-6);  // whichever path this libtorch takes
  // A 1 KiB budget over Lk = 29 float32 scores per row and 6 (batch, head) pairs: 1024 / 696 -> 1 row.
  EXPECT(wan::detail::attention_chunk_rows(q, k, 1024) == 1);
  EXPECT(wan::detail::attention_chunk_rows(q, k, 696 * 10) == 10);
  // bf16 in, bf16 out; scores in float32 keep it close to the float64 result.
  at::Tensor b = wan::detail::attention_chunked(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16), 7);
  EXPECT(b.scalar_type() == at::kBFloat16);
  EXPECT(wantest::rel_l2(b, want) < 2e-2);
}

TEST(dit_attention_rejects_mismatched_shapes) {
  at::Tensor q = at::randn({1, 2, 4, 8}), k = at::randn({1, 2, 5, 8});
  EXPECT_THROWS(attention(q, k, at::randn({1, 2, 6, 8})), "differ in shape");
  EXPECT_THROWS(attention(q, at::randn({1, 2, 5, 4}), at::randn({1, 2, 5, 4})), "head dim");
  EXPECT_THROWS(attention(q.view({2, 4, 8}), k, k), "q must be");
}

TEST(dit_rejects_bad_inputs) {
  const WanDiT& dit = tiny_dit();
  at::Tensor ctx = at::zeros({4, 64});
  EXPECT_THROWS(dit.forward(at::zeros({15, 1, 4, 4}), 1.0, ctx), "in_dim is 16");
  EXPECT_THROWS(dit.forward(at::zeros({16, 1, 5, 4}), 1.0, ctx), "patch");
  EXPECT_THROWS(dit.forward(at::zeros({16, 1, 4, 7}), 1.0, ctx), "patch");
  EXPECT_THROWS(dit.forward(at::zeros({16, 4, 4}), 1.0, ctx), "latents x must be");
  EXPECT_THROWS(dit.forward(at::zeros({16, 1, 4, 4}), 1.0, at::zeros({4, 32})), "text_dim 64");
  EXPECT_THROWS(dit.forward(at::zeros({16, 1, 4, 4}), 1.0, at::zeros({1, 4, 64})), "context must be");
  EXPECT_THROWS(dit.forward(at::zeros({16, 1, 4, 4}), NAN, ctx), "timestep");
  // Weights that do not fit the architecture are refused at construction, naming the tensor.
  LoadedModel m = load_model(wantest::tiny_model());
  TensorMap w = m.dit;
  w.erase("blocks.1.ffn.2.bias");
  EXPECT_THROWS((void)WanDiT(w, m.arch.dit), "blocks.1.ffn.2.bias");
  DitArch a = m.arch.dit;
  a.num_heads = 3;
  EXPECT_THROWS((void)WanDiT(m.dit, a), "num_heads");
}

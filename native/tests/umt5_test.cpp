// UMT5 encoder: the tiny model's encoder against DiffSynth's WanTextEncoder on the same weights
// (test/golden/make_t5.py), the prompt zeroing of encode_prompt, and input errors.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoint/layout.h"
#include "formats/safetensors.h"
#include "common/cuda.h"
#include "common/error.h"
#include "models/umt5.h"
#include "test.h"

using namespace wan;

namespace {
const Umt5Encoder& tiny_encoder() {
  static const LoadedModel m = load_model(wantest::tiny_model());
  static const Umt5Encoder enc(m.t5, m.arch.t5);
  return enc;
}
TensorMap golden() { return load_safetensors(wantest::source_dir() + "/test/golden/data/t5.safetensors"); }
at::Tensor get(const TensorMap& g, const std::string& name) {
  auto it = g.find(name);
  if (it == g.end()) throw wantest::Failure{"golden t5.safetensors lacks " + name};
  return it->second.data;
}
at::Tensor ids_of(std::initializer_list<int64_t> v) { return at::tensor(std::vector<int64_t>(v), at::kLong).view({1, -1}); }
}  // namespace

// Measured (x86-64 CPU, libtorch 1.13, float32), relative L2 of out / prompt_emb:
//   case0 len 1 of 64: 4.8e-8 / 0 (bit-exact)   case1 len 20 of 64: 1.9e-7 / 1.8e-7
//   case2 lens 9, 33 of 64 (batched): 1.7e-7 / 1.7e-7   case3 64 of 64: 1.8e-7 / 1.8e-7
//   case4 150 of 160: 1.8e-7 / 1.7e-7   case5 512 of 512: 1.9e-7 / 1.9e-7
// The test prints them. For scale: flipping the bucket direction gives 0.48, ignoring the mask 0.14.
TEST(umt5_matches_diffsynth_golden) {
  const Umt5Encoder& enc = tiny_encoder();
  TensorMap g = golden();
  int cases = 0;
  for (int i = 0;; ++i) {
    const std::string p = "case" + std::to_string(i) + ".";
    if (!g.count(p + "ids")) break;
    at::Tensor ids = get(g, p + "ids"), mask = get(g, p + "mask");
    at::Tensor want = get(g, p + "out"), want_prompt = get(g, p + "prompt_emb");
    at::Tensor out = enc.forward(ids, mask);
    at::Tensor prompt = enc.encode_prompt(ids, mask);
    EXPECT(out.scalar_type() == at::kFloat && out.sizes() == want.sizes());
    double e_out = wantest::rel_l2(out, want), e_prompt = wantest::rel_l2(prompt, want_prompt);
    std::printf("  umt5 case%d [%ld, %ld]: rel L2 out %.3g, prompt_emb %.3g\n", i, long(ids.size(0)),
                long(ids.size(1)), e_out, e_prompt);
    EXPECT(e_out <= 1e-4);
    EXPECT(e_prompt <= 1e-4);
    // Past each row's length: exactly zero, in both the golden data and ours; before it, untouched.
    for (int64_t b = 0; b < ids.size(0); ++b) {
      int64_t len = mask[b].sum().item<int64_t>(), L = ids.size(1);
      if (len < L) {
        EXPECT(prompt[b].narrow(0, len, L - len).eq(0).all().item<bool>());
        EXPECT(want_prompt[b].narrow(0, len, L - len).eq(0).all().item<bool>());
        EXPECT(!out[b].narrow(0, len, L - len).eq(0).all().item<bool>());  // forward leaves them
      }
      EXPECT(at::equal(prompt[b].narrow(0, 0, len), out[b].narrow(0, 0, len)));
    }
    ++cases;
  }
  EXPECT(cases >= 6);
}

TEST(umt5_batch_rows_match_single_rows) {
  // Batched rows with different lengths give what each row gives alone.
  const Umt5Encoder& enc = tiny_encoder();
  at::Tensor ids = at::zeros({2, 16}, at::kLong), mask = at::zeros({2, 16}, at::kLong);
  for (int64_t l = 0; l < 5; ++l) ids[0][l] = 10 + l;
  ids[0][5] = 1;
  mask[0].narrow(0, 0, 6).fill_(1);
  for (int64_t l = 0; l < 11; ++l) ids[1][l] = 200 + 7 * l;
  ids[1][11] = 1;
  mask[1].narrow(0, 0, 12).fill_(1);
  at::Tensor both = enc.encode_prompt(ids, mask);
  for (int64_t b = 0; b < 2; ++b) {
    at::Tensor one = enc.encode_prompt(ids.narrow(0, b, 1), mask.narrow(0, b, 1));
    EXPECT(wantest::rel_l2(both.narrow(0, b, 1), one) < 1e-6);
  }
}

TEST(umt5_position_buckets_follow_t5) {
  // 32 buckets: 16 per direction, distances 0..7 exact, then log-spaced to 128, then capped.
  at::Tensor bk = t5_position_buckets(300, 32);
  auto at_dist = [&](int64_t d) { return d >= 0 ? bk[0][d].item<int64_t>() : bk[-d][0].item<int64_t>(); };
  EXPECT(at_dist(0) == 0);
  EXPECT(at_dist(-7) == 7 && at_dist(7) == 16 + 7);
  EXPECT(at_dist(-8) == 8 && at_dist(-15) == 9 && at_dist(-16) == 10 && at_dist(-31) == 11);
  EXPECT(at_dist(-32) == 12 && at_dist(-64) == 14 && at_dist(-127) == 15 && at_dist(-128) == 15);
  EXPECT(at_dist(-299) == 15 && at_dist(299) == 31 && at_dist(16) == 26);
  EXPECT_THROWS(t5_position_buckets(4, 2), "num_buckets");
}

TEST(umt5_rejects_bad_inputs) {
  const Umt5Encoder& enc = tiny_encoder();
  at::Tensor ids = ids_of({5, 6, 1, 0}), mask = ids_of({1, 1, 1, 0});
  EXPECT(enc.forward(ids, mask).sizes() == at::IntArrayRef({1, 4, 64}));
  EXPECT(enc.forward(ids, mask.to(at::kBool)).sizes() == at::IntArrayRef({1, 4, 64}));
  EXPECT_THROWS(enc.forward(ids_of({5, 384, 1, 0}), mask), "token id 384 at ids[0, 1] is outside the vocabulary of 384");
  EXPECT_THROWS(enc.forward(ids_of({5, -1, 1, 0}), mask), "token id -1");
  EXPECT_THROWS(enc.forward(ids, ids_of({1, 1, 1})), "mask must have the shape of ids");
  EXPECT_THROWS(enc.forward(ids.view({-1}), mask.view({-1})), "ids must be [B, L]");
  EXPECT_THROWS(enc.forward(ids.to(at::kInt), mask), "ids must be int64");
  EXPECT_THROWS(enc.forward(ids, mask.to(at::kFloat)), "mask must be int64, int32 or bool");
  EXPECT_THROWS(enc.forward(ids, ids_of({1, 2, 1, 0})), "mask values must be 0 or 1, mask[0, 1] = 2");
  EXPECT_THROWS(enc.forward(at::zeros({1, 0}, at::kLong), at::zeros({1, 0}, at::kLong)), "empty");
  EXPECT_THROWS(enc.encode_prompt(ids, ids_of({1, 0, 1, 0})), "1s then 0s");
}

TEST(umt5_rejects_bad_weights) {
  LoadedModel m = load_model(wantest::tiny_model());
  TensorMap w = m.t5;
  w.erase("blocks.1.attn.k.weight");
  EXPECT_THROWS(Umt5Encoder(w, m.arch.t5), "blocks.1.attn.k.weight");
  T5Arch a = m.arch.t5;
  a.shared_pos = true;
  EXPECT_THROWS(Umt5Encoder(m.t5, a), "shared_pos");
}

TEST(umt5_offloaded_weights_give_the_resident_output) {
  // Offloaded, the weights live in host memory and come to the device for each forward; the
  // output is the resident encoder's, bit for bit. On a GPU the device holds none of them
  // between calls (the CPU half checks the bookkeeping; the CUDA half runs where there is one).
  const LoadedModel m = load_model(wantest::tiny_model());
  const at::Tensor ids = at::remainder(at::arange(40, at::kLong) * 7 + 3, 380).view({1, -1});
  const at::Tensor mask = (at::arange(40, at::kLong) < 12).to(at::kLong).view({1, -1});
  std::vector<Placement> places{{at::kCPU, at::kFloat}};
  if (cuda_available()) places.push_back({at::Device(at::kCUDA, 0), at::kBFloat16});
  for (const Placement& p : places) {
    const Umt5Encoder resident(m.t5, m.arch.t5, p);
    const at::Tensor want = resident.encode_prompt(ids, mask);
    const int64_t before = p.device.is_cuda() ? device_memory(p.device).allocated : 0;
    const Umt5Encoder offloaded(m.t5, m.arch.t5, p, true);
    EXPECT(offloaded.offloaded() && offloaded.device() == p.device);
    EXPECT(p.device.is_cpu() || device_memory(p.device).allocated == before);  // nothing on the device yet
    const at::Tensor got = offloaded.encode_prompt(ids, mask);
    EXPECT(got.device() == p.device && at::equal(got, want));
    if (p.device.is_cuda()) {
      const int64_t after = device_memory(p.device).allocated - int64_t(got.nbytes());
      std::printf("     %s: offloaded output equal; device bytes held between prompts %lld (before %lld)\n",
                  p.device.str().c_str(), (long long)after, (long long)before);
      EXPECT(std::llabs(after - before) < 65536);  // the allocator's rounding; the weights are 214 kB
    }
  }
}

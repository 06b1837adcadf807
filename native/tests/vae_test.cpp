// The Wan2.1 VAE against DiffSynth-Studio's WanVideoVAE on the tiny model (base dim 8, the real
// structure): golden data from test/golden/make_vae.py (test/golden/data/vae.safetensors).
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "checkpoint/layout.h"
#include "formats/safetensors.h"
#include "common/error.h"
#include "models/vae.h"
#include "golden.h"
#include "test.h"

using namespace wan;

namespace {
at::Tensor golden(const std::string& name) { return wantest::golden_float("vae", name); }
// The case's tile settings as make_vae.py recorded them.
void golden_tiles(const std::string& name, std::array<int64_t, 2>& size, std::array<int64_t, 2>& stride) {
  auto meta = read_safetensors_header(wantest::golden_path("vae")).metadata;
  auto j = nlohmann::json::parse(meta.at(name));
  size = {j["tile_size"][0].get<int64_t>(), j["tile_size"][1].get<int64_t>()};
  stride = {j["tile_stride"][0].get<int64_t>(), j["tile_stride"][1].get<int64_t>()};
}

const WanVAE& tiny_vae() {
  static std::unique_ptr<WanVAE> vae;
  if (!vae) {
    LoadedModel m = load_model(wantest::tiny_model("official", 0));
    vae = std::make_unique<WanVAE>(m.vae, m.arch.vae);
  }
  return *vae;
}

void expect_close(const char* name, const at::Tensor& got, const at::Tensor& want, double tol) {
  if (got.sizes() != want.sizes())
    throw wantest::Failure{std::string(name) + ": shape differs from the golden output"};
  double e = wantest::rel_l2(got, want);
  std::printf("    %s: relative L2 %.3e\n", name, e);
  if (!(e <= tol)) throw wantest::Failure{std::string(name) + ": relative L2 " + std::to_string(e) + " > tolerance"};
}

VaeDecodeOptions untiled_decode() {
  VaeDecodeOptions o;
  o.tiled = false;
  return o;
}
VaeEncodeOptions untiled_encode() {
  VaeEncodeOptions o;
  o.tiled = false;
  return o;
}
}  // namespace

TEST(vae_decode_single_frame_matches_diffsynth) {
  at::Tensor v = tiny_vae().decode(golden("decode_single.in"), untiled_decode());
  EXPECT(v.sizes() == at::IntArrayRef({3, 1, 32, 32}));
  expect_close("decode_single", v, golden("decode_single.out"), 1e-4);
}

TEST(vae_decode_video_matches_diffsynth) {
  at::Tensor v = tiny_vae().decode(golden("decode_video.in"), untiled_decode());  // [16, 3, 5, 7]
  EXPECT(v.sizes() == at::IntArrayRef({3, 9, 40, 56}));
  EXPECT(v.max().item<float>() <= 1.f && v.min().item<float>() >= -1.f);
  expect_close("decode_video", v, golden("decode_video.out"), 1e-4);
}

TEST(vae_decode_tiled_matches_diffsynth) {
  VaeDecodeOptions o;
  golden_tiles("decode_tiled", o.tile_size, o.tile_stride);
  at::Tensor z = golden("decode_tiled.in");  // [16, 2, 12, 14]: 2 x 3 overlapping tiles
  at::Tensor v = tiny_vae().decode(z, o);
  expect_close("decode_tiled", v, golden("decode_tiled.out"), 1e-4);
  // Blending differs from the untiled result, but not by much.
  double e = wantest::rel_l2(v, tiny_vae().decode(z, untiled_decode()));
  std::printf("    decode_tiled vs untiled: relative L2 %.3e\n", e);
  EXPECT(e > 1e-6 && e < 0.5);
}

TEST(vae_decode_default_options_fit_one_tile_and_equal_untiled) {
  // The pipeline's default tiles (30 x 52 latents) cover this plane with one tile, which blends
  // with weight one everywhere.
  at::Tensor z = golden("decode_video.in");
  EXPECT(VaeDecodeOptions().tiled);
  EXPECT(at::equal(tiny_vae().decode(z), tiny_vae().decode(z, untiled_decode())));
}

TEST(vae_encode_matches_diffsynth) {
  at::Tensor z = tiny_vae().encode(golden("encode_video.in"), untiled_encode());  // [3, 5, 32, 24]
  EXPECT(z.sizes() == at::IntArrayRef({16, 2, 4, 3}));
  expect_close("encode_video", z, golden("encode_video.out"), 1e-4);
}

TEST(vae_encode_tiled_matches_diffsynth) {
  VaeEncodeOptions o;
  golden_tiles("encode_tiled", o.tile_size, o.tile_stride);
  at::Tensor z = tiny_vae().encode(golden("encode_tiled.in"), o);  // [3, 5, 48, 40]
  EXPECT(z.sizes() == at::IntArrayRef({16, 2, 6, 5}));
  expect_close("encode_tiled", z, golden("encode_tiled.out"), 1e-4);
}

TEST(vae_progress_is_called_once_per_chunk) {
  std::vector<std::pair<int, int>> calls;
  VaeDecodeOptions d = untiled_decode();
  d.progress = [&](int done, int total) { calls.emplace_back(done, total); };
  tiny_vae().decode(golden("decode_video.in"), d);  // 3 latent frames
  EXPECT(calls.size() == 3 && calls.front() == std::make_pair(1, 3) && calls.back() == std::make_pair(3, 3));

  calls.clear();
  golden_tiles("decode_tiled", d.tile_size, d.tile_stride);
  d.tiled = true;
  tiny_vae().decode(golden("decode_tiled.in"), d);  // 6 tiles x 2 latent frames
  EXPECT(calls.size() == 12 && calls.back() == std::make_pair(12, 12));
  for (size_t i = 0; i < calls.size(); ++i) EXPECT(calls[i].first == int(i) + 1 && calls[i].second == 12);

  calls.clear();
  VaeEncodeOptions e = untiled_encode();
  e.progress = [&](int done, int total) { calls.emplace_back(done, total); };
  tiny_vae().encode(at::zeros({3, 9, 16, 16}), e);  // chunks: frame 0, 1-4, 5-8
  EXPECT(calls.size() == 3 && calls.back() == std::make_pair(3, 3));
}

TEST(vae_rejects_bad_shapes_and_options) {
  const WanVAE& vae = tiny_vae();
  EXPECT_THROWS(vae.decode(at::zeros({8, 1, 4, 4})), "latents must be [16, frames, height, width]");
  EXPECT_THROWS(vae.decode(at::zeros({16, 4, 4})), "[16, 4, 4]");
  EXPECT_THROWS(vae.decode(at::zeros({16, 0, 4, 4})), "latents must be");
  EXPECT_THROWS(vae.decode(at::zeros({16, 1, 4, 4}, at::kLong)), "floating point");
  VaeDecodeOptions bad;
  bad.tile_size = {4, 4};
  bad.tile_stride = {5, 2};
  EXPECT_THROWS(vae.decode(at::zeros({16, 1, 4, 4}), bad), "tile_stride");
  EXPECT_THROWS(vae.encode(at::zeros({4, 5, 16, 16})), "video must be [3, frames, height, width]");
  EXPECT_THROWS(vae.encode(at::zeros({3, 4, 16, 16})), "4 frames");
  EXPECT_THROWS(vae.encode(at::zeros({3, 5, 20, 16})), "multiples of 8");
  EXPECT_THROWS(vae.encode(at::zeros({3, 5, 16, 12})), "16 x 12");
}

TEST(vae_rejects_weights_that_do_not_match_the_architecture) {
  LoadedModel m = load_model(wantest::tiny_model("official", 0));
  TensorMap w = m.vae;
  w.erase("decoder.head.2.bias");
  EXPECT_THROWS(WanVAE(w, m.arch.vae), "decoder.head.2.bias");
}

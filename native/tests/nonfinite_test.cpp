// Non-finite results (NaN/Inf) are errors naming the stage, never a black video with success:
// a copy of the tiny model with one NaN weight in the DiT, the T5 or the VAE.
#include <cmath>
#include <limits>

#include "checkpoint/layout.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {
// The tiny model with tensor `name` of `component` copied (the loaded one aliases the read-only
// mapped file) and its first element set to NaN.
LoadedModel with_nan(TensorMap LoadedModel::*component, const std::string& name) {
  LoadedModel m = load_model(wantest::tiny_model(), true);
  auto it = (m.*component).find(name);
  if (it == (m.*component).end()) throw wantest::Failure{"no tensor " + name + " in the tiny model"};
  at::Tensor t = it->second.data.clone();
  t.view({-1})[0] = std::numeric_limits<float>::quiet_NaN();
  it->second.data = t;
  return m;
}
// The first tensor of `component` whose name starts with `prefix` and ends with "weight".
std::string first_weight(TensorMap LoadedModel::*component, const std::string& prefix) {
  LoadedModel m = load_model(wantest::tiny_model(), true);
  for (const auto& [name, t] : m.*component)
    if (name.rfind(prefix, 0) == 0 && name.size() > 6 && name.compare(name.size() - 6, 6, "weight") == 0 &&
        t.data.is_floating_point())
      return name;
  throw wantest::Failure{"no weight under " + prefix};
}
}  // namespace

TEST(a_nan_dit_weight_is_an_error_naming_the_step_and_block_not_a_black_video) {
  const T2VEngine e(with_nan(&LoadedModel::dit, "blocks.1.ffn.0.weight"), ParallelOptions{});
  const T2VRequest r = wantest::tiny_request(32, 32, 5, 2, 5.0);
  EXPECT_ERROR(e.generate(r), "denoising produced non-finite values (NaN or Inf) in the latents at step 1/2",
               "first went non-finite in block 2/2 of the conditional pass", "a NaN or Inf in the DiT's weights");
  // The engine stays usable for what does not reach the bad weight: the error is not sticky.
  EXPECT_ERROR(e.generate(r), "at step 1/2");
}

TEST(a_nan_dit_weight_on_a_device_group_fails_every_rank_naming_the_step) {
  ParallelOptions p;
  p.devices = "cpu:0-1", p.ulysses = 2, p.timeout_s = 60;
  const T2VEngine e(with_nan(&LoadedModel::dit, "blocks.0.self_attn.o.weight"), p);
  const T2VRequest r = wantest::tiny_request(32, 32, 1, 2, 1.0);
  EXPECT_ERROR(e.generate(r), "non-finite values (NaN or Inf) in the latents at step 1/2", "in block 1/2");
  EXPECT_ERROR(e.generate(r), "at step 1/2");  // the group was rebuilt and fails the same way again
}

TEST(a_nan_text_encoder_weight_is_an_error_naming_the_text_encoder) {
  const T2VEngine e(with_nan(&LoadedModel::t5, first_weight(&LoadedModel::t5, "blocks.0.")), ParallelOptions{});
  EXPECT_ERROR(e.generate(wantest::tiny_request(32, 32, 1, 1, 1.0)),
               "the text encoder produced non-finite values (NaN or Inf) in the prompt embedding",
               "a NaN or Inf in the text encoder's weights");
}

TEST(a_nan_vae_decoder_weight_is_an_error_naming_the_decode) {
  const T2VEngine e(with_nan(&LoadedModel::vae, first_weight(&LoadedModel::vae, "decoder.")), ParallelOptions{});
  EXPECT_ERROR(e.generate(wantest::tiny_request(32, 32, 1, 1, 1.0)),
               "decoding produced non-finite values (NaN) in the video from finite latents", "in the VAE's weights");
}

TEST(a_nan_vae_encoder_weight_is_an_error_naming_the_input_video_encode) {
  const T2VEngine e(with_nan(&LoadedModel::vae, first_weight(&LoadedModel::vae, "encoder.")), ParallelOptions{});
  T2VRequest r = wantest::tiny_request(32, 32, 5, 2, 1.0);
  r.input_video = at::zeros({3, 5, 32, 32});
  r.denoising_strength = 0.5;
  EXPECT_ERROR(e.generate(r), "encoding the input video produced non-finite latents (NaN or Inf)",
               "in the VAE's weights");
}

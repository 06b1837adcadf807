// Request validation, in one place: every request field checked against the model before any
// compute (errors are ParamErrors naming the field), the video-size rule, and the model files the
// weights alias checked for changes since the engine mapped them.
#include "pipeline/t2v.h"

#include "models/latent_grid.h"
#include "parallel/layout_auto.h"
#include "pipeline/fork.h"
#include "pipeline/tea_cache.h"

namespace wan {

namespace {
void check_prompt(const at::Tensor& ids, const at::Tensor& mask, const char* which, int64_t text_len) {
  if (!ids.defined() || !mask.defined()) fail(which, " token ids and mask are required");
  if (ids.dim() != 1 || ids.size(0) != text_len)
    fail(which, " token ids must have shape [", text_len, "] (text_len), got ", ids.sizes());
  if (mask.sizes() != ids.sizes()) fail(which, " mask shape ", mask.sizes(), " differs from the ids' ", ids.sizes());
  if (ids.scalar_type() != at::kLong) fail(which, " token ids must be int64");
}
}  // namespace

// `what` prefixes the parameter names ("budget video ").
void T2VEngine::check_video_size(int64_t height, int64_t width, int64_t num_frames, const char* what) const {
  const int64_t hw_factor = 8 * model_.arch.dit.patch[1];  // VAE stride 8 × DiT patch 2 = 16 for Wan2.1
  if (height < hw_factor || height % hw_factor != 0 || height > 4096)
    fail(what, "height must be a multiple of ", hw_factor, " between ", hw_factor, " and 4096, got ", height);
  if (width < hw_factor || width % hw_factor != 0 || width > 4096)
    fail(what, "width must be a multiple of ", hw_factor, " between ", hw_factor, " and 4096, got ", width);
  if (!valid_frame_count(num_frames) || num_frames > 1001)
    fail(what, "num_frames must be 4k+1 (1, 5, 9, ..., 81, ...) and at most 1001, got ", num_frames);
}

void T2VEngine::check_tokens_per_rank(const T2VRequest& r) const {
  try {
    check_layout_tokens(layout_, latent_grid(r.num_frames, r.height, r.width).tokens(model_.arch.dit.patch));
  } catch (const ParamError&) {
    throw;
  } catch (const Error& e) {
    throw ParamError("height", e.what());
  }
}

void T2VEngine::check_model_files() const {
  for (const FileStamp& f : mapped_files_)
    if (const std::string change = file_change(f); !change.empty())
      fail("model file ", f.path, " ", change, " since the engine loaded it; the engine reads its weights from that "
           "file while it is open, so it refuses to run: restore the file, or reopen the model (a new engine) to use "
           "the file as it is now");
}

// Every problem with a request field is a ParamError naming the field as the request spells it;
// a model file changed underneath or a request over the budget stays an Error.
void T2VEngine::validate(const T2VRequest& r) const {
  check_model_files();
  const DitArch& a = model_.arch.dit;
  // The checks shared with other callers (which throw Error) name `field` here.
  const auto on_field = [](const char* field, const auto& check) {
    try {
      check();
    } catch (const ParamError&) {
      throw;
    } catch (const Error& e) {
      throw ParamError(field, e.what());
    }
  };
  // check_video_size (also the budget video's check) names the first size out of range: the field
  // is the first that fails on its own, beside sizes it accepts.
  const auto size_fails = [&](int64_t h, int64_t w, int64_t f) {
    try {
      check_video_size(h, w, f, "");
      return false;
    } catch (const Error&) {
      return true;
    }
  };
  const int64_t ok_hw = 8 * a.patch[1];
  on_field(size_fails(r.height, ok_hw, 1) ? "height" : size_fails(ok_hw, r.width, 1) ? "width" : "num_frames",
           [&] { check_video_size(r.height, r.width, r.num_frames, ""); });
  check_tokens_per_rank(r);
  if (!r.timesteps.empty()) {  // a custom schedule (pipeline/flow_match.h listed_schedule)
    if (const std::string why = timesteps_problem(r.timesteps); !why.empty()) fail_param("timesteps", why);
    if (r.num_inference_steps != int64_t(r.timesteps.size()))
      fail_param("timesteps", "timesteps lists ", r.timesteps.size(), " steps but num_inference_steps is ",
                 r.num_inference_steps, "; give one of them");
    if (r.denoising_strength != 1.0)
      fail_param("timesteps", "with timesteps the first one sets where the schedule starts; denoising_strength must "
                 "stay 1, got ", r.denoising_strength);
  }
  if (r.num_inference_steps < 1 || r.num_inference_steps > 1000)
    fail_param("num_inference_steps", "num_inference_steps must be between 1 and 1000, got ", r.num_inference_steps);
  if (!(r.cfg_scale >= 0.0 && r.cfg_scale <= 100.0))
    fail_param("cfg_scale", "cfg_scale must be between 0 and 100, got ", r.cfg_scale);
  if (!(r.sigma_shift > 0.0 && r.sigma_shift <= 100.0))
    fail_param("sigma_shift", "sigma_shift must be in (0, 100], got ", r.sigma_shift);
  for (int i = 0; i < 2; ++i)
    if (r.tile_size[i] < 1 || r.tile_stride[i] < 1 || r.tile_stride[i] > r.tile_size[i])
      fail_param(r.tile_size[i] < 1 ? "tile_size" : "tile_stride",
                 "tile_size and tile_stride must be positive with stride <= size, got size (", r.tile_size[0], ", ",
                 r.tile_size[1], ") stride (", r.tile_stride[0], ", ", r.tile_stride[1], ")");
  if (!(r.tea_cache_l1_thresh >= 0.0 && r.tea_cache_l1_thresh <= 10.0))
    fail_param("tea_cache_l1_thresh", "tea_cache_l1_thresh must be between 0 (off) and 10, got ", r.tea_cache_l1_thresh);
  if (r.tea_cache_l1_thresh > 0)
    on_field("tea_cache_model_id", [&] { tea_cache_model(a, r.tea_cache_model_id); });
  else if (!r.tea_cache_model_id.empty())
    fail_param("tea_cache_model_id", "tea_cache_model_id '", r.tea_cache_model_id,
               "' is given without tea_cache_l1_thresh, which turns TeaCache on");
  if (!(r.denoising_strength > 0.0 && r.denoising_strength <= 1.0))
    fail_param("denoising_strength", "denoising_strength must be in (0, 1], got ", r.denoising_strength);
  if (r.input_video.defined()) {
    const at::Tensor& v = r.input_video;
    if (v.dim() != 4 || v.size(0) != 3 || v.size(1) != r.num_frames || v.size(2) != r.height || v.size(3) != r.width)
      fail_param("input_video", "input_video must be [3, num_frames, height, width] = [3, ", r.num_frames, ", ",
                 r.height, ", ", r.width, "], got ", v.sizes());
    if (!v.is_floating_point())
      fail_param("input_video", "input_video must be floating point in [-1, 1], got ", v.scalar_type());
    if (!at::isfinite(v).all().item<bool>()) fail_param("input_video", "input_video holds values that are not finite");
  } else if (r.input_latents.defined()) {
    const LatentGrid g = latent_grid(r.num_frames, r.height, r.width);
    const int64_t z = model_.arch.vae.z_dim;
    const at::Tensor& l = r.input_latents;
    if (l.dim() != 4 || l.size(0) != z || l.size(1) != g.frames || l.size(2) != g.height || l.size(3) != g.width)
      fail_param("input_latents", "input_latents must be [", z, ", ", g.frames, ", ", g.height, ", ", g.width,
                 "], got ", l.sizes());
  } else if (r.denoising_strength != 1.0) {
    fail_param("denoising_strength", "denoising_strength ", r.denoising_strength,
               " < 1 starts from a noised input video; give input_video");
  }
  if (r.stop_at_step != 0 || r.resume_from_step >= 0 || r.resume_latents.defined()) {  // forked runs (pipeline/fork.h)
    const LatentGrid g = latent_grid(r.num_frames, r.height, r.width);
    check_fork(r, request_schedule(r), {model_.arch.vae.z_dim, g.frames, g.height, g.width}, fingerprint_);
  }
  on_field("prompt", [&] { check_prompt(r.prompt_ids, r.prompt_mask, "prompt", a.text_len); });
  if (r.cfg_scale != 1.0)
    on_field("negative_prompt", [&] { check_prompt(r.negative_ids, r.negative_mask, "negative prompt", a.text_len); });
  lora_set(r);  // every LoRA file read (cached), parsed and matched against the model
  if (const std::string why = budget_problem(r); !why.empty()) fail(why);
}

}  // namespace wan

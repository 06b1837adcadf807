// One text-to-video request: what DiffSynth-Studio's WanVideoPipeline.__call__ takes, with the
// prompts already tokenized (src/tokenizer.ts), and its one JSON form. The JSON form is what the
// addon decodes (src/native.ts hands the request object over), what `wanlab-engine generate
// --request FILE` reads, and what node 0 of a multi-node engine publishes to the others.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace wan {

struct T2VRequest {
  at::Tensor prompt_ids, prompt_mask;      // [text_len] int64, 0/1: the tokenizer's output
  at::Tensor negative_ids, negative_mask;  // [text_len]
  uint64_t seed = 0;
  int64_t height = 480, width = 832, num_frames = 81, num_inference_steps = 50;
  double cfg_scale = 5.0, sigma_shift = 5.0;
  bool tiled = false;
  std::array<int64_t, 2> tile_size{30, 52}, tile_stride{15, 26};  // latent units, DiffSynth's defaults
  // TeaCache (pipeline/tea_cache.h): 0 off; DiffSynth's tea_cache_l1_thresh (0.05 .. 0.3 typical)
  // and tea_cache_model_id ("": the calibration that fits the DiT).
  double tea_cache_l1_thresh = 0;
  std::string tea_cache_model_id;
  // Video-to-video (DiffSynth's input_video, denoising_strength): [3, num_frames, height, width]
  // float32 in [-1, 1]. Its latents (VAE encode, tiled as the decode is) noised to the schedule's
  // first sigma start the sampler, whose sigmas start at denoising_strength instead of 1.
  at::Tensor input_video;
  double denoising_strength = 1.0;
  // Or the input's latents already encoded, [z_dim, f, h/8, w/8] float32: what follower nodes of
  // a multi-node engine receive from node 0.
  at::Tensor input_latents;
  // A custom schedule (pipeline/flow_match.h listed_schedule): timesteps in (0, 1000], strictly
  // decreasing, shifted by sigma_shift as LightX2V shifts its denoising_step_list; its length is
  // the number of steps. Empty: num_inference_steps evenly spaced (DiffSynth's schedule).
  std::vector<double> timesteps;
  // Forked runs (pipeline/fork.h). stop_at_step k in 1 .. steps-1: the latents after step k, returned
  // undecoded (0: run to the end). resume_from_step k >= 0: the first k steps already ran and
  // resume_latents [z_dim, f, h/8, w/8] float32 is where they left off; resume_model, when not
  // "", must be this engine's model fingerprint, and resume_sigmas, when not empty, the sigmas of
  // the run that stopped (the schedule must be the same). -1: not a resume.
  int64_t stop_at_step = 0;
  int64_t resume_from_step = -1;
  at::Tensor resume_latents;
  std::string resume_model;
  std::vector<double> resume_sigmas;
  // LoRAs (checkpoint/lora.h, models/lora_merge.h) on the DiT for this request, in order:
  // W' = W + Σ scale · ΔW. strict false skips the keys that fit nothing instead of refusing.
  struct Lora {
    std::string path;
    double scale = 1.0;
    bool strict = true;
  };
  std::vector<Lora> loras;
};

// The request as JSON, keys as the TypeScript API spells them (camelCase):
//   {"promptIds": [int, ...], "promptMask": [0|1, ...], "negativeIds": [...], "negativeMask": [...],
//    "seed": "decimal" | number, "height", "width", "numFrames", "numInferenceSteps", "cfgScale",
//    "sigmaShift", "tiled", "tileSize": [h, w], "tileStride": [h, w], "teaCacheL1Thresh",
//    "teaCacheModelId", "denoisingStrength", "timesteps": [number, ...], "stopAtStep",
//    "resumeFromStep", "resumeModel", "resumeSigmas": [number, ...]}
// Tensors other than the token ids (input_video, input_latents, resume_latents) travel beside it,
// not in it; timesteps, stopAtStep and the resume keys are written only where set.
// "loras": [{"path": string, "scale": number (default 1), "strict": bool (default true)}, ...]
// (at most 16; written only where set).
// request_to_json writes every key (the seed as a decimal string: a uint64 does not fit a double),
// the token ids and masks only where their tensors are defined (no negative prompt: none), so
// request_from_json(request_to_json(r)) equals r in every field the JSON holds.
// Integers are integral JSON numbers within int64; the seed 0 .. 2^64-1; tileSize and tileStride
// two integers; the masks 0 or 1; no array longer than kMaxJsonArray (pipeline/json_fields.h).
nlohmann::json request_to_json(const T2VRequest& r);
// Every key is optional except promptIds and promptMask when `need_prompt` (a memory plan needs
// only the video's shape); negativeIds and negativeMask come together or not at all; absent keys
// keep T2VRequest's defaults. An unknown key, or a value of the wrong type or out of the bounds
// above, throws ParamError (common/error.h) whose message names the key and whose field is the
// engine's name for it ("num_frames"; "prompt" and "negative_prompt" for the token arrays; an
// unknown key's own name). Ranges that depend on the model (height a multiple of 16, ...) are
// T2VEngine::validate's.
T2VRequest request_from_json(const nlohmann::json& j, bool need_prompt = true);

}  // namespace wan

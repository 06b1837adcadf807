// Text-to-video as DiffSynth-Studio's WanVideoPipeline runs it: prompt embeddings (UMT5, zeroed
// past each prompt's length) → seeded noise → flow-match sampling with classifier-free guidance
// (nega + cfg_scale · (posi − nega); the unconditional pass is skipped at cfg_scale 1) → VAE decode.
// With an input video (video-to-video), the sampler starts from its latents noised part-way.
// Tokenization happens in the caller (src/tokenizer.ts), which hands over ids and masks.
#pragma once
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/layout.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "models/dit.h"
#include "models/lora_merge.h"
#include "models/memory_model.h"
#include "pipeline/flow_match.h"
#include "pipeline/prompt_cache.h"
#include "models/umt5.h"
#include "models/vae.h"
#include "parallel/device_group.h"
#include "pipeline/engine_options.h"
#include "pipeline/request.h"

namespace wan {

struct T2VEvent {
  std::string stage;  // "encode", "denoise", "decode"
  int64_t step = 0, total = 0;
  double elapsed_s = 0, eta_s = 0;  // within the stage
  // [16, f, h, w] float32 where the DiT runs, denoise events only: the sampler's state itself (no
  // copy), so a consumer that keeps it copies it (to the CPU) on the steps it wants.
  at::Tensor latents;
};

struct T2VResult {
  at::Tensor noise;    // [16, f, h, w] float32: the initial latents
  at::Tensor context;  // [text_len, text_dim] float32: the positive prompt embedding
  at::Tensor latents;  // [16, f, h, w] float32: before the VAE
  at::Tensor video;    // [3, F, H, W] float32 in [-1, 1]
  // Seconds per stage and per step; encode_cached: how many of the request's prompts (1, or 2
  // with CFG) came from the engine's prompt cache instead of the text encoder; with TeaCache,
  // tea_cache_skipped_steps: the steps whose blocks were skipped (0-based); with an input video,
  // video_encode_s (inside encode_s).
  nlohmann::json timings;
  // A run stopped early (stop_at_step): its fork state (pipeline/fork.h), and `video` undefined;
  // else null.
  nlohmann::json fork;
};

// Thrown when generate() sees its cancel flag; the engine stays usable (the next generate gives
// what a fresh engine gives). The flag is read between the units of every stage, so a cancel
// acts within one unit's time: between text-encoder layers and input-video chunks (encode); at
// each step, before each DiT block, between its sublayers and between the query chunks of its
// attentions (denoise; on every rank of a device group: denoise.cpp denoise_parallel says how they
// agree); between VAE chunks (decode). On the tiny model at 480x832x81 on two CPU cores that is
// about a second (native/tests/cancel_test.cpp measures it); on a GPU, the work already queued
// on the device when the host sees the flag (kernels are queued asynchronously, and the engine
// waits for the device once per step, so at most the rest of that step; typically a few
// sublayers, as the host is rarely far ahead). what() says where it stopped, naming the unit
// that did not complete:
//   "cancelled during encode, text encoder layer 3/24"
//   "cancelled during encode, input video chunk 2/6"
//   "cancelled at step 3/50"              (before the step's first block, or a TeaCache-skipped step)
//   "cancelled at step 3/50, block 12/30" (blocks 1..11 of step 3 ran; block 12 stopped or never began)
//   "cancelled before decode, after step 50/50"
//   "cancelled during decode, chunk 5/21" (chunks 1..4 ran)
struct Cancelled : Error {
  std::string stage;           // "encode", "denoise" or "decode"
  int64_t step = 0, steps = 0;  // denoise and before decode: the step (1-based) of steps; else 0
  std::string unit;            // "block", "layer", "chunk", or "" at a step or stage boundary
  int64_t part = 0, parts = 0;  // the unit (1-based) that did not run, of how many; 0 without a unit
  Cancelled(std::string stage, int64_t step, int64_t steps, std::string unit, int64_t part, int64_t parts,
            const std::string& what)
      : Error(what), stage(std::move(stage)), step(step), steps(steps), unit(std::move(unit)), part(part), parts(parts) {}
};

// The loaded model, ready to generate: weights stay resident between requests.
//
// Model files changed underneath: the weights of a model loaded from a directory alias its
// memory-mapped files (common/mapped_file.h), which must not change while the engine lives. The
// engine remembers each mapped file's size, mtime and inode as they were when it was mapped, and
// before every job (validate(), so generate(); and memory_report()) checks them again: a file
// that was truncated, grew, was rewritten, replaced or removed makes the job fail before any
// compute, with an error naming the file, what changed, and that the model must be reopened (a
// new engine). Nothing is reloaded silently: a half-written checkpoint must not be picked up. A
// file truncated while a job reads it raises SIGBUS, which the fatal-signal handler of
// common/mapped_file.h turns into a logged exit (status 135) that removes the registered cleanup
// files. With more than
// one device the DiT's denoising loop runs SPMD on a device group (one thread per device) that
// lives as long as the engine, with one copy of the DiT per local device; the text encoder and
// the VAE run on the calling thread.
class T2VEngine {
 public:
  explicit T2VEngine(const std::string& model_dir, const ParallelOptions& parallel = {},
                     const ComputeOptions& compute = {});
  // From weights already in memory (e.g. random real-size weights for benchmarks).
  T2VEngine(LoadedModel model, const ParallelOptions& parallel, const ComputeOptions& compute = {});
  ~T2VEngine();
  const LoadedModel& model() const { return model_; }
  // The DiT weights' identity (pipeline/fork.h dit_fingerprint): what a resume is checked against.
  const std::string& dit_identity() const { return fingerprint_; }
  const ParallelLayout& layout() const { return layout_; }
  // How the layout was picked: "" (the degrees given), else `--layout auto`'s rule and reason.
  const std::string& layout_reason() const { return layout_reason_; }
  // The DiT copy on `device` (one per local device); the first one for the CPU.
  const WanDiT& dit(const at::Device& device) const;
  const Umt5Encoder& t5() const { return *t5_; }
  const WanVAE& vae() const { return *vae_; }
  // Where each model computes, e.g. {"dit": "cuda:0 bf16", "t5": "cuda:0 bf16", "vae": ...}.
  nlohmann::json placement() const;
  // Each CUDA device the models use, now: [{device, name, total_bytes, free_bytes (the driver's),
  // allocated_bytes, peak_allocated_bytes, reserved_bytes (the caching allocator's)}]; [] on the CPU.
  nlohmann::json memory_now() const;
  // The device group (null with one device); tests inject faults and set timeouts through it.
  DeviceGroup* group() const { return group_.get(); }

  // Checks every parameter against the model, and with a memory budget the predicted peak,
  // before any compute; errors name the parameter and the allowed values.
  void validate(const T2VRequest& r) const;
  // The predicted live bytes, per stage, on the DiT's first device for this request as this
  // engine is placed (persistent blocks, shards, where the T5 and the VAE run, dtype).
  MemoryPlan memory_plan(const T2VRequest& r) const;
  // The prompt cache's entries, bytes, capacity, hits and misses so far.
  PromptCache::Stats prompt_cache_stats() const { return prompt_cache_.stats(); }
  // "" when the request fits the memory budget (or there is none), else what it needs, the
  // budget and what would fit.
  std::string budget_problem(const T2VRequest& r) const;
  // memory_plan as JSON (models/memory_model.h to_json) with device, budget_bytes, fits, problem;
  // a TeaCache calibration that does not fit is an error (tea_cache_model_id ...).
  nlohmann::json memory_report(const T2VRequest& r) const;

  T2VResult generate(const T2VRequest& r, const std::function<void(const T2VEvent&)>& progress = {},
                     const std::atomic<bool>* cancel = nullptr) const;

  // Several nodes serving one stream of requests (`wanlab serve --rendezvous … --node-rank K`):
  // node 0's generate() first publishes the request to the group's TCPStore; follow() on the
  // other nodes runs the published requests in order (each joins node 0's collectives, so a
  // cancel on node 0 cancels them too) until node 0 calls end_requests() or `stop` is set.
  // `on_request(n, error)` reports each request followed ("" when it succeeded).
  // The LoRAs on the DiT now (pipeline/lora_use.cpp): {"loras": [{path, fingerprint, scale, rank,
  // weights, skipped}], "working_bytes" (per DiT copy), "switch_s" (the last switch's seconds)}.
  nlohmann::json loras() const;
  // Puts the request's LoRA set on every local DiT copy unless it is on already (generate does).
  void use_loras(const T2VRequest& r) const;

  void follow(const std::atomic<bool>& stop, const std::function<void(int64_t, const std::string&)>& on_request = {}) const;
  void end_requests() const;
  int node_rank() const { return node_rank_; }

 private:
  LoadedModel model_;
  std::string fingerprint_;  // dit_fingerprint(model_), taken before the loaded tensors are released
  std::unique_ptr<Umt5Encoder> t5_;
  // One per local device, in device-list order; with shard_weights one per local rank.
  std::vector<std::unique_ptr<WanDiT>> dits_;
  bool shard_weights_ = false;
  int64_t persistent_params_ = -1;  // given, or chosen for the memory budget
  bool dit_f8_ = false;             // the DiT's block linears stay float8 (models/dit.h dit_keeps_f8)
  bool t5_offload_ = false;         // the text encoder's weights pinned on the host between prompts
  int ranks_on_dit_device_ = 1;     // local CPU ranks share the host's memory
  int64_t memory_budget_ = -1;
  std::string budget_note_;  // with a budget: what the engine chose for it
  std::string devices_note_;  // devices "auto": what it chose and why
  std::unique_ptr<WanVAE> vae_;
  // The files the weights were mapped from, as they were then (see the class comment).
  std::vector<FileStamp> mapped_files_;
  void check_model_files() const;
  // LoRAs: the request's set read and checked (validate), the set on the DiT copies now.
  std::vector<LoraUse> lora_set(const T2VRequest& r) const;
  mutable std::mutex lora_mu_;
  mutable std::string lora_key_;
  mutable nlohmann::json lora_info_ = nlohmann::json::array();
  mutable double lora_switch_s_ = 0;
  mutable PromptCache prompt_cache_;
  // [text_len, dim] on the CPU: from the cache, else encoded (and kept); `cached` counts hits.
  // `cancel`: checked between the text encoder's layers (throws Cancelled).
  at::Tensor encode(const at::Tensor& ids, const at::Tensor& mask, int& cached, const std::atomic<bool>* cancel = nullptr) const;
  Placement dit_place_, t5_place_, vae_place_;
  ParallelLayout layout_;
  std::string layout_reason_;
  std::unique_ptr<DeviceGroup> group_;
  int nnodes_ = 1, node_rank_ = 0;
  std::shared_ptr<Rendezvous> requests_;  // own store client for the request stream (nnodes > 1)
  mutable std::mutex requests_mu_;
  mutable int64_t published_ = 0;
  // `input_latents`: video-to-video's encoded input, sent along so followers need not encode it.
  void publish(const T2VRequest& r, const at::Tensor& input_latents) const;
  void apply_budget(const ComputeOptions& c);
  void check_video_size(int64_t height, int64_t width, int64_t num_frames, const char* what) const;
  // Every sequence-parallel rank needs a DiT token of r's video (parallel/layout_auto.h: ranks
  // beyond tokens): a ParamError on height otherwise (validate() and memory_report() ask it).
  void check_tokens_per_rank(const T2VRequest& r) const;
  void check_host_memory() const;
  MemoryPlanOptions plan_options(const T2VRequest& r) const;
  std::string budget_hints(const T2VRequest& r, bool weights_only = false) const;
  at::Tensor denoise_parallel(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& negative,
                              const T2VRequest& r, const FlowMatchSchedule& sched, const std::vector<bool>& skips,
                              int64_t first, int64_t last, nlohmann::json& step_s,
                              const std::function<void(int64_t, const at::Tensor&)>& on_step,
                              const std::atomic<bool>* cancel) const;
};

// --save-tensors: float32 `noise` [16, f, h, w], `context` [text_len, text_dim], `latents`
// [16, f, h, w], `video` [3, F, H, W] in [-1, 1], and int64 `token_ids` [text_len] (the prompt's).
// A run stopped early has no `video`; its fork state (pipeline/fork.h) is the metadata key
// "wanlab.fork", so the file resumes the run (`wanlab generate --resume FILE`).
void save_result_tensors(const std::string& path, const T2VResult& result, const T2VRequest& request);

}  // namespace wan

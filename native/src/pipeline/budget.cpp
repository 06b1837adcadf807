// The engine's memory budget policy, in one place: the memory model's options for a request as
// this engine is placed (plan_options, memory_plan, models/memory_model.h), how a budget is
// applied when the engine opens (how many DiT blocks stay resident), whether a request fits,
// what to try when it does not, and whether the host can pin what is streamed.
#include "pipeline/t2v.h"

#include <algorithm>

#include "common/log.h"
#include "common/proc_status.h"
#include "pipeline/tea_cache.h"

namespace wan {

MemoryPlanOptions T2VEngine::plan_options(const T2VRequest& r) const {
  MemoryPlanOptions o;
  o.height = int(r.height), o.width = int(r.width), o.num_frames = int(r.num_frames);
  o.sequence_parallel = layout_.sequence_parallel();
  o.persistent_params = persistent_params_;
  o.shard_weights = shard_weights_;
  o.t5_on_device = t5_place_.device == dit_place_.device;
  o.t5_offload = t5_offload_;
  o.vae_on_device = vae_place_.device == dit_place_.device;
  o.tiled = r.tiled;
  o.tile_h = int(r.tile_size[0]), o.tile_w = int(r.tile_size[1]);
  o.bytes_per_value = int(c10::elementSize(dit_place_.dtype));
  o.gpu = dit_place_.device.is_cuda();
  o.dit_f8 = dit_f8_;
  o.encode_video = r.input_video.defined() && !r.input_latents.defined();
  o.block_residuals = r.tea_cache_l1_thresh > 0 ? (r.cfg_scale != 1.0 && layout_.cfg == 1 ? 2 : 1) : 0;
  o.ranks_on_device = ranks_on_dit_device_;
  if (!r.loras.empty())
    o.lora_bytes = lora_working_bytes(lora_set(r), dit_place_.dtype, model_.arch.dit,
                                      shard_weights_ ? layout_.sequence_parallel() : 1) *
                   (shard_weights_ ? ranks_on_dit_device_ : 1);  // CPU ranks: one sharded DiT each
  return o;
}

MemoryPlan T2VEngine::memory_plan(const T2VRequest& r) const { return plan_memory(model_.arch, plan_options(r)); }

// What to try when a plan is over the budget, from what this engine and request could change;
// `weights_only`: the smallest video is already too much, so only where the weights live helps.
std::string T2VEngine::budget_hints(const T2VRequest& r, bool weights_only) const {
  std::vector<std::string> h;
  const MemoryPlan p = memory_plan(r);
  const bool cuda = dit_place_.device.is_cuda();
  if (!weights_only && !r.tiled) {
    T2VRequest t = r;
    t.tiled = true;
    const int64_t tiled = memory_plan(t).peak();
    if (tiled < p.peak()) h.push_back(concat("tiled decode (", gb_text(tiled), ")"));
  }
  // Offloaded, the text encoder leaves denoising and decoding; on the CPU, every stage.
  if (cuda && p.t5 > 0) h.push_back("the text encoder offloaded between prompts (t5Offload) or on the CPU (t5Device 'cpu')");
  if (cuda && p.t5_streamed > 0) h.push_back("the text encoder on the CPU (t5Device 'cpu')");
  if (cuda && weights_only && p.vae > 0) h.push_back("the VAE on another device (vaeDevice)");
  if (cuda && persistent_params_ > 0) h.push_back("fewer persistent DiT parameters");
  if (!weights_only) h.push_back("fewer frames or a smaller size");
  if (!weights_only && p.denoise() >= std::max(p.encode(), p.decode()))
    h.push_back("more devices (ulysses/ring split the DiT's tokens)");
  if (!cuda) h.push_back("a larger budget (a CPU engine keeps every weight resident)");
  std::string out;
  for (const std::string& s : h) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void T2VEngine::apply_budget(const ComputeOptions& c) {
  memory_budget_ = c.memory_budget;
  std::string source;  // how an automatic budget was reached
  if (c.memory_budget == kAutoBudget) {
    memory_budget_ = auto_memory_budget(dit_place_.device, &source);
    source = " (" + source + ")";
  }
  const auto& v = c.budget_video;
  if (memory_budget_ <= 0) fail("memory budget must be positive bytes, got ", memory_budget_);
  check_video_size(v.height, v.width, v.num_frames, "budget video ");
  T2VRequest probe;
  probe.height = v.height, probe.width = v.width, probe.num_frames = v.num_frames, probe.tiled = v.tiled;
  const std::string video = concat(v.height, "x", v.width, "x", v.num_frames, v.tiled ? " tiled" : "");
  const bool choose = dit_place_.device.is_cuda() && c.persistent_params < 0 && !shard_weights_;
  if (choose) {
    // The most whole blocks, in order, that leave room for the budget video (models/dit.h); when
    // even every block streamed is too much for it, stream them all and check requests one by one.
    persistent_params_ = persistent_params_for_budget(model_.arch, plan_options(probe), memory_budget_);
    if (persistent_params_ == -2) persistent_params_ = 0;
  }
  // What stays on the device whatever the request: the weights and the smallest video's activations.
  T2VRequest smallest;
  smallest.height = smallest.width = 8 * model_.arch.dit.patch[1], smallest.num_frames = 1;
  const MemoryPlan floor = memory_plan(smallest);
  if (floor.peak() > memory_budget_)
    fail("memory budget ", gb_text(memory_budget_), ": the weights this engine keeps on ", dit_place_.device.str(),
         " need ", gb_text(floor.resident()), " (DiT ", gb_text(floor.dit_resident + floor.dit_streamed), ", text encoder ",
         gb_text(floor.t5), ", VAE ", gb_text(floor.vae), ") and even a ", smallest.height, "x", smallest.width,
         "x1 video peaks at ", gb_text(floor.peak()), " (", stages_text(floor), ")",
         choose ? " with every DiT block streamed from host memory" : "", "; try ", budget_hints(smallest, true));
  const MemoryPlan p = memory_plan(probe);
  budget_note_ = concat(gb_text(memory_budget_), " per device", source, "; ", video, " predicted at ", gb_text(p.peak()), " (",
                        stages_text(p), ")", p.peak() > memory_budget_ ? ", over it: such requests are refused" : "",
                        choose ? (persistent_params_ < 0 ? "; every DiT weight resident"
                                                         : concat("; persistent_params ", persistent_params_, " chosen"))
                               : "",
                        p.host() > 0 ? concat("; host memory ", gb_text(p.host()), " (", gb_text(p.host_pinned),
                                              " pinned DiT blocks)")
                                     : "");
  if (p.peak() > memory_budget_) log_warn("memory budget ", budget_note_);
  else log_info("memory budget ", budget_note_);
}

// Streamed DiT blocks are pinned (page-locked) host memory: the kernel cannot swap them out, so
// asking for more than the host has fails deep inside the CUDA allocator. Say so before.
void T2VEngine::check_host_memory() const {
  T2VRequest any;
  const MemoryPlan p = memory_plan(any);
  const int64_t t5 = t5_offload_ ? p.host_t5 : 0, pinned = p.host_pinned + t5;
  if (pinned == 0) return;
  const int64_t available = meminfo_bytes("MemAvailable:");
  const std::string what =
      concat(t5 ? concat("the offloaded text encoder (", gb_text(t5), ")") : "", t5 && p.host_pinned ? " and " : "",
             p.host_pinned ? concat("the DiT blocks streamed past ", persistent_params_, " persistent parameters (",
                                    gb_text(p.host_pinned), ")")
                           : "");
  if (available >= 0 && pinned > available)
    fail(what, " keep ", gb_text(pinned), " pinned in host memory, but the host has ", gb_text(available),
         " available (MemAvailable); keep more on ", dit_place_.device.str(),
         " (a larger budget or persistent-params, no t5 offload) or free host memory");
  log_info(what, ": ", gb_text(pinned), " of pinned host memory (", gb_text(available), " available)");
}

std::string T2VEngine::budget_problem(const T2VRequest& r) const {
  if (memory_budget_ <= 0) return "";
  const MemoryPlan p = memory_plan(r);
  if (p.peak() <= memory_budget_) return "";
  return concat("a ", r.height, "x", r.width, "x", r.num_frames, r.tiled ? " tiled" : "",
                " generation is predicted to need ", gb_text(p.peak()), " on ", dit_place_.device.str(), " (",
                stages_text(p), "), over the budget of ", gb_text(memory_budget_), "; try ", budget_hints(r));
}

nlohmann::json T2VEngine::memory_report(const T2VRequest& r) const {
  // The plan is asked before a request is taken: a TeaCache calibration that does not exist or
  // fit this DiT is named here already.
  // and a video too small for the group's sequence-parallel ranks (a server refuses it at submit).
  check_model_files();
  check_tokens_per_rank(r);
  if (r.tea_cache_l1_thresh > 0) tea_cache_model(model_.arch.dit, r.tea_cache_model_id);
  nlohmann::json j = to_json(memory_plan(r));
  j["device"] = dit_place_.device.str();
  j["budget_bytes"] = memory_budget_;
  const std::string why = budget_problem(r);
  j["fits"] = why.empty();
  j["problem"] = why;
  return j;
}

}  // namespace wan

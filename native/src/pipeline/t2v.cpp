#include "pipeline/t2v.h"

#include <c10/core/GradMode.h>
#include <algorithm>
#include <chrono>
#include <cstring>

#include <c10/core/InferenceMode.h>

#include <thread>

#include "formats/safetensors.h"
#include "common/cuda.h"
#include "common/log.h"
#include "common/proc_status.h"
#include "parallel/rank_memory.h"
#include "parallel/sequence_parallel.h"
#include "pipeline/flow_match.h"
#include "pipeline/noise.h"
#include "pipeline/tea_cache.h"

namespace wan {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void check_prompt(const at::Tensor& ids, const at::Tensor& mask, const char* which, int64_t text_len) {
  if (!ids.defined() || !mask.defined()) fail(which, " token ids and mask are required");
  if (ids.dim() != 1 || ids.size(0) != text_len)
    fail(which, " token ids must have shape [", text_len, "] (text_len), got ", ids.sizes());
  if (mask.sizes() != ids.sizes()) fail(which, " mask shape ", mask.sizes(), " differs from the ids' ", ids.sizes());
  if (ids.scalar_type() != at::kLong) fail(which, " token ids must be int64");
}

// A cancel seen in the denoising stage: at the start of step `step` (1-based) of `steps`, or
// before its block `block` (1-based) of `blocks`.
[[noreturn]] void cancelled_in_step(int64_t step, int64_t steps, int64_t block = 0, int64_t blocks = 0) {
  std::string what = concat("cancelled at step ", step, "/", steps);
  if (block > 0) what += concat(", block ", block, "/", blocks);
  throw Cancelled("denoise", step, steps, block > 0 ? "block" : "", block, blocks, what);
}
// A cancel seen between the units of the encode or decode stage: before unit `part` of `parts`.
[[noreturn]] void cancelled_in(const char* stage, const char* what, const char* unit, int64_t part, int64_t parts) {
  throw Cancelled(stage, 0, 0, unit, part, parts, concat("cancelled during ", stage, ", ", what, " ", part, "/", parts));
}
bool cancel_set(const std::atomic<bool>* cancel) { return cancel && cancel->load(std::memory_order_relaxed); }

// Non-finite results (NaN/Inf) are errors naming the stage, never a black video. Each check is a
// reduction over a stage's (small) output: the latents per step, the embeddings, the video.
bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }
std::string nonfinite_cause(const char* model) {
  return concat("; a NaN or Inf in the ", model, " weights, or a config value such as eps out of range, is the likely cause");
}
// The first block (1-based) whose output sum (DitHooks::block_sums) is not finite; 0: none.
int64_t first_nonfinite_block(const std::vector<at::Tensor>& sums) {
  if (sums.empty()) return 0;
  const at::Tensor bad = at::isfinite(at::stack(sums).to(at::kCPU)).logical_not().nonzero();  // [k, 1]
  return bad.size(0) > 0 ? bad[0][0].item<int64_t>() + 1 : 0;
}
// `sums` per DiT pass of the step: {name, block sums}.
[[noreturn]] void fail_nonfinite_step(int64_t step, int64_t steps, int64_t blocks,
                                      const std::vector<std::pair<const char*, const std::vector<at::Tensor>*>>& sums) {
  std::string where;
  for (const auto& [pass, v] : sums)
    if (const int64_t b = first_nonfinite_block(*v); b > 0) {
      where = concat(": the DiT's output first went non-finite in block ", b, "/", blocks, *pass ? " of the " : "", pass,
                     *pass ? " pass" : "");
      break;
    }
  fail("denoising produced non-finite values (NaN or Inf) in the latents at step ", step, "/", steps, where,
       nonfinite_cause("DiT's"));
}
}  // namespace

// A CUDA device that exists, or an error naming it and what is visible.
void check_cuda_device(int index, const std::string& what) {
  const int n = cuda_device_count();
  if (n == 0)
    fail(what, ": no CUDA device is visible", cuda_built() ? "" : " (this wanlab build has no CUDA)");
  if (index >= n) fail(what, ": cuda:", index, " does not exist (", n, " CUDA device", n == 1 ? "" : "s", " visible)");
}

T2VEngine::T2VEngine(const std::string& model_dir, const ParallelOptions& p, const ComputeOptions& c)
    : T2VEngine(load_model(model_dir, true), p, c) {}

T2VEngine::T2VEngine(LoadedModel model, const ParallelOptions& p, const ComputeOptions& c)
    : model_(std::move(model)), prompt_cache_(c.prompt_cache_bytes) {
  // The files the weights alias (a model loaded with mmap), as they were when mapped.
  for (const TensorMap* m : {&model_.dit, &model_.t5, &model_.vae})
    for (const auto& [name, t] : *m) {
      FileStamp st;
      if (!t.data.defined() || t.data.numel() == 0 || !mapped_file_stamp(t.data.data_ptr(), &st)) continue;
      if (std::none_of(mapped_files_.begin(), mapped_files_.end(), [&](const FileStamp& f) { return f.path == st.path; }))
        mapped_files_.push_back(st);
    }
  std::string why;
  const std::string list = resolve_devices(p.devices, &why);  // "auto" resolved once
  if (p.devices == "auto") {
    devices_note_ = concat("auto: ", list, " (", why, ")");
    // A CUDA build that finds no GPU is the surprising case: say so where the run is watched.
    if (list == "cpu" && cuda_built()) log_warn("devices ", devices_note_, "; the DiT runs on the CPU in float32");
    else log_info("devices ", devices_note_);
  }
  const std::vector<DeviceSpec> devices = parse_devices(list);
  bool any_cuda = false, any_cpu = false;
  for (const auto& d : devices) {
    (d.type == "cuda" ? any_cuda : any_cpu) = true;
    if (d.type == "cuda") check_cuda_device(d.index, concat("devices '", p.devices, "'"));
  }
  if (any_cuda && any_cpu) fail("devices '", p.devices, "' mix CPU and CUDA ranks; use one kind");
  const at::Device first = aten_device(devices[0]);  // one kind: checked above
  const at::ScalarType dtype = c.dtype.empty() ? default_compute_dtype(first) : parse_compute_dtype(c.dtype);
  dit_place_ = {first, dtype};
  auto aux_place = [&](const std::string& text, const char* what) {
    if (text.empty()) return dit_place_;
    const at::Device d = parse_device(text);
    if (d.is_cuda()) check_cuda_device(d.index(), concat(what, " '", text, "'"));
    // A CPU text encoder or VAE beside CUDA ranks computes in float32 (bf16 matmuls crawl on CPUs).
    return Placement{d, d.is_cuda() || !first.is_cuda() ? dtype : at::kFloat};
  };
  t5_place_ = aux_place(c.t5_device, "t5 device");
  vae_place_ = aux_place(c.vae_device, "vae device");
  if (!(p.timeout_s > 0)) fail("timeout must be positive, got ", p.timeout_s, " s");
  if (p.nnodes < 1 || p.node_rank < 0 || p.node_rank >= p.nnodes)
    fail("node rank ", p.node_rank, " must be in [0, nnodes = ", p.nnodes, ")");
  std::string rdv_host = "127.0.0.1";
  int rdv_port = 0;
  if (p.nnodes > 1) {
    const std::string& u = p.rendezvous;
    const size_t colon = u.rfind(':');
    if (u.rfind("tcp://", 0) != 0 || colon == std::string::npos || colon < 6)
      fail("rendezvous must be tcp://HOST:PORT, got '", u, "'");
    rdv_host = u.substr(6, colon - 6);
    const std::string port = u.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
      fail("rendezvous port must be 1..65535, got '", port, "' in '", u, "'");
    rdv_port = std::stoi(port);
  }
  const int world = int(devices.size()) * p.nnodes;
  layout_ = make_layout(world, p.ulysses, p.ring, p.cfg_parallel ? 2 : 1, int(model_.arch.dit.num_heads));
  c10::NoGradGuard no_grad;
  if (c.t5_offload && !t5_place_.device.is_cuda())
    fail("t5 offload keeps the text encoder's weights in host memory between prompts on a CUDA device; the text "
         "encoder runs on ", t5_place_.device.str(), ", where they are in host memory already");
  t5_offload_ = c.t5_offload;
  // CPU ranks are threads sharing one DiT; CUDA ranks each hold their own copy. Sharded weights:
  // one DiT per local rank, holding part (global rank mod sp) of each block.
  const int sp = layout_.sequence_parallel();
  if (c.shard_weights && sp < 2)
    fail("shard weights needs a sequence-parallel group (ulysses x ring >= 2); the layout has ", sp, " rank",
         sp == 1 ? "" : "s", " per CFG branch");
  shard_weights_ = c.shard_weights;
  persistent_params_ = c.persistent_params;
  dit_f8_ = dit_keeps_f8(model_.dit);
  ranks_on_dit_device_ = first.is_cpu() ? int(devices.size()) : 1;
  if (c.memory_budget != -1) apply_budget(c);
  check_host_memory();
  t5_ = std::make_unique<Umt5Encoder>(model_.t5, model_.arch.t5, t5_place_, t5_offload_);
  DitOptions dit_options{dit_place_, persistent_params_};
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    if (d.type == "cuda") dit_options.placement.device = aten_device(d);
    if (shard_weights_) {
      dit_options.weight_shards = sp;
      dit_options.weight_shard = int((p.node_rank * int(devices.size()) + int(i)) % sp);
    }
    dits_.push_back(std::make_unique<WanDiT>(model_.dit, model_.arch.dit, dit_options));
    if (d.type == "cpu" && !shard_weights_) break;
  }
  vae_ = std::make_unique<WanVAE>(model_.vae, model_.arch.vae, vae_place_);
  // The models hold what they need; in-memory weights (random ones) are not kept twice.
  model_.dit.clear(), model_.t5.clear(), model_.vae.clear();
  const LogLevel log_level = p.log_level.empty() ? env_log_level() : parse_log_level(p.log_level);
  if (world > 1) {
    DeviceGroupOptions o;
    o.logger = std::make_shared<Logger>(log_level, p.log_dir, p.node_rank);
    o.devices = devices;
    o.rendezvous_host = rdv_host, o.rendezvous_port = rdv_port;
    o.nnodes = p.nnodes, o.node_rank = p.node_rank;
    o.layout = layout_;
    o.timeout = std::chrono::milliseconds(int64_t(p.timeout_s * 1000));
    group_ = std::make_unique<DeviceGroup>(o);
  }
  nnodes_ = p.nnodes, node_rank_ = p.node_rank;
  if (p.nnodes > 1)
    requests_ = Rendezvous::join(rdv_host, uint16_t(rdv_port), std::chrono::milliseconds(int64_t(p.timeout_s * 1000)));
}

T2VEngine::~T2VEngine() = default;

namespace {
const char* kRequestKey = "wanlab/request/";
std::vector<int64_t> int_list(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}
at::Tensor int_tensor(const nlohmann::json& j) { return at::tensor(j.get<std::vector<int64_t>>(), at::kLong); }
}  // namespace

void T2VEngine::publish(const T2VRequest& r, const at::Tensor& input_latents) const {
  nlohmann::json j = {{"seed", std::to_string(r.seed)}, {"height", r.height}, {"width", r.width},
                      {"num_frames", r.num_frames}, {"steps", r.num_inference_steps}, {"cfg_scale", r.cfg_scale},
                      {"sigma_shift", r.sigma_shift}, {"tiled", r.tiled}, {"tile_size", r.tile_size},
                      {"tile_stride", r.tile_stride}, {"tea_cache_l1_thresh", r.tea_cache_l1_thresh},
                      {"tea_cache_model_id", r.tea_cache_model_id}, {"prompt_ids", int_list(r.prompt_ids)},
                      {"prompt_mask", int_list(r.prompt_mask)}};
  if (r.negative_ids.defined()) j["negative_ids"] = int_list(r.negative_ids), j["negative_mask"] = int_list(r.negative_mask);
  std::lock_guard<std::mutex> lock(requests_mu_);
  const int64_t n = ++published_;
  if (input_latents.defined()) {  // video-to-video: the encoded input, raw float32, under its own key first
    const at::Tensor c = input_latents.to(at::kFloat).contiguous();
    j["input_latents_shape"] = c.sizes().vec(), j["denoising_strength"] = r.denoising_strength;
    requests_->set(concat(kRequestKey, n, "/input_latents"),
                   std::string(static_cast<const char*>(c.data_ptr()), size_t(c.nbytes())));
  }
  requests_->set(concat(kRequestKey, n), j.dump());
}

void T2VEngine::end_requests() const {
  if (!requests_ || node_rank_ != 0) return;
  std::lock_guard<std::mutex> lock(requests_mu_);
  requests_->set(concat(kRequestKey, ++published_), "end");
}

void T2VEngine::follow(const std::atomic<bool>& stop,
                       const std::function<void(int64_t, const std::string&)>& on_request) const {
  if (!requests_ || node_rank_ == 0) fail("follow() is for nodes 1.. of a multi-node engine (this is node ", node_rank_, " of ", nnodes_, ")");
  for (int64_t n = 1;; ++n) {
    const std::string key = concat(kRequestKey, n);
    while (!requests_->check(key)) {
      if (stop.load()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const std::string text = requests_->get(key);
    if (text == "end") return;
    std::string error;
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      T2VRequest r;
      r.seed = std::stoull(j["seed"].get<std::string>());
      r.height = j["height"], r.width = j["width"], r.num_frames = j["num_frames"];
      r.num_inference_steps = j["steps"], r.cfg_scale = j["cfg_scale"], r.sigma_shift = j["sigma_shift"];
      r.tiled = j["tiled"], r.tile_size = j["tile_size"], r.tile_stride = j["tile_stride"];
      // Every node skips the steps node 0 skips, or their collectives would not meet.
      r.tea_cache_l1_thresh = j["tea_cache_l1_thresh"], r.tea_cache_model_id = j["tea_cache_model_id"];
      r.prompt_ids = int_tensor(j["prompt_ids"]), r.prompt_mask = int_tensor(j["prompt_mask"]);
      if (j.contains("negative_ids")) r.negative_ids = int_tensor(j["negative_ids"]), r.negative_mask = int_tensor(j["negative_mask"]);
      if (j.contains("input_latents_shape")) {  // video-to-video: node 0's encoded input
        const std::string bytes = requests_->get(concat(key, "/input_latents"));
        const std::vector<int64_t> shape = j["input_latents_shape"];
        r.input_latents = at::empty(shape, at::kFloat);
        if (size_t(r.input_latents.nbytes()) != bytes.size())
          fail("request ", n, ": input latents of ", bytes.size(), " bytes for shape ", r.input_latents.sizes());
        std::memcpy(r.input_latents.data_ptr(), bytes.data(), bytes.size());
        r.denoising_strength = j["denoising_strength"];
      }
      generate(r);
    } catch (const std::exception& e) {
      error = e.what();  // node 0 reports the request's failure; this node serves the next one
    }
    if (on_request) on_request(n, error);
  }
}

const WanDiT& T2VEngine::dit(const at::Device& device) const {
  if (device.is_cpu()) return *dits_.front();
  for (const auto& d : dits_)
    if (d->device() == device) return *d;
  fail("no DiT on ", device.str(), " in this engine (devices: ", placement()["dit"].dump(), ")");
}

nlohmann::json T2VEngine::placement() const {
  nlohmann::json dit = nlohmann::json::array();
  for (const auto& d : dits_) dit.push_back(placement_name({d->device(), d->compute_dtype()}));
  return {{"dit", dit},
          {"t5", placement_name(t5_place_)},
          {"t5_offload", t5_offload_},
          {"vae", placement_name(vae_place_)},
          {"dit_resident_params", dits_.front()->resident_params()},
          {"dit_offloaded_params", dits_.front()->offloaded_params()},
          {"dit_weight_shards", dits_.front()->weight_shards()},
          {"dit_f8_params", dits_.front()->f8_params()},
          {"devices_note", devices_note_},
          {"memory_budget_bytes", memory_budget_},
          {"memory_budget_note", budget_note_}};
}

nlohmann::json T2VEngine::memory_now() const {
  std::vector<at::Device> used;
  auto add = [&](const at::Device& d) {
    if (d.is_cuda() && std::find(used.begin(), used.end(), d) == used.end()) used.push_back(d);
  };
  for (const auto& d : dits_) add(d->device());
  add(t5_place_.device), add(vae_place_.device);
  nlohmann::json out = nlohmann::json::array();
  for (const at::Device& d : used) {
    const DeviceCapacity c = cuda_memory_info(d);
    const DeviceMemory m = wan::device_memory(d);
    out.push_back({{"device", d.str()}, {"name", cuda_device_name(d)}, {"total_bytes", c.total}, {"free_bytes", c.free},
                   {"allocated_bytes", m.allocated}, {"peak_allocated_bytes", m.peak_allocated},
                   {"reserved_bytes", m.reserved}});
  }
  return out;
}

at::Tensor T2VEngine::denoise_parallel(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& negative,
                                       const T2VRequest& r, const FlowMatchSchedule& sched,
                                       const std::vector<bool>& skips, nlohmann::json& step_s,
                                       const std::function<void(int64_t, const at::Tensor&)>& on_step,
                                       const std::atomic<bool>* cancel) const {
  const bool cfg = r.cfg_scale != 1.0;
  const int64_t steps = sched.steps();
  const DitArch& A = model_.arch.dit;
  at::Tensor result;
  // Cancel on a device group. Every rank of this process reads the same flag (`cancel`) between
  // DiT blocks, and the first to see it throws RankCancelled. The ranks then agree through the
  // group's failure path rather than through a vote: the throwing rank sets the group's abort
  // flag, which every collective of this process polls, and closes its process groups, so a peer
  // blocked on it (on this node or another) fails at once instead of at its timeout; run() then
  // rebuilds every rank's groups, and the next request starts clean. A vote before each block (a
  // broadcast of rank 0's flag) would make every job pay a collective, and on CUDA a host sync,
  // per block to spare only cancelled jobs that rebuild. Ranks may stop a block apart; the error
  // names where the first one stopped. Other nodes (followers) do not see this process's flag:
  // the rank that stops sets a key for this generation of the groups in the store, which their
  // ranks poll between blocks (at most every 0.2 s, one store round trip), so a follower stops
  // even while its work meets no collective with a stopped rank (a CFG branch on its own node);
  // and at each step's start rank 0 still broadcasts its flag.
  struct Stop {
    std::mutex mu;
    bool set = false;
    int64_t step = 0, block = 0, blocks = 0;
    void record(int64_t st, int64_t b, int64_t n) {
      std::lock_guard<std::mutex> lock(mu);
      if (!set) set = true, step = st, block = b, blocks = n;
    }
  } stop;
  const bool remote = group_->world() > group_->size();  // several nodes
  const std::string cancel_key = concat("wanlab/cancel/gen", group_->generation());
  try {
    group_->run([&](RankState& s) {
      c10::InferenceMode guard;
      RankMemory mem(s.ctx.device);  // this rank's allocations from here on
      const auto t_request = Clock::now();
      log_info("request ", s.request, ": start, ", steps, " steps, latents ", noise.sizes(), cfg ? ", cfg " : "",
               cfg ? std::to_string(r.cfg_scale) : "", s.cfg ? (s.cfg_index ? " (unconditional half)" : " (conditional half)") : "");
      const WanDiT& net = shard_weights_ ? *dits_.at(size_t(s.ctx.rank - group_->first_rank())) : dit(s.ctx.device);
      DitShard shard = make_dit_shard(s, A.num_heads, A.num_layers, net.compute_dtype());
      // CFG-parallel: the second half of the group runs the unconditional pass.
      const bool uncond_branch = cfg && s.cfg && s.cfg_index == 1;
      const at::Tensor& ctx = uncond_branch ? negative : context;
      at::Tensor x = noise.to(s.ctx.device);
      BlockSkip cond_skip, uncond_skip;  // TeaCache: this rank's residual per branch
      const bool tea = !skips.empty();
      int64_t step = 0;  // 1-based, the step in progress
      std::vector<at::Tensor> sums, uncond_sums;  // this rank's block output sums, this step
      DitHooks hooks, uncond_hooks;
      auto last_poll = Clock::now();
      hooks.in_block = [&](int64_t b, int64_t n) {
        bool now = cancel_set(cancel);
        if (!now && remote && seconds_since(last_poll) >= 0.2) {
          last_poll = Clock::now();
          now = s.store->check(cancel_key);
        }
        if (!now) return;
        if (remote) s.store->set(cancel_key, concat("step ", step, ", block ", b + 1));
        stop.record(step, b + 1, n);
        throw RankCancelled(concat("cancelled at step ", step, "/", steps, ", block ", b + 1, "/", n));
      };
      uncond_hooks.in_block = hooks.in_block;
      hooks.block_sums = &sums, uncond_hooks.block_sums = &uncond_sums;
      for (int64_t i = 0; i < steps; ++i) {
        step = i + 1;
        sums.clear(), uncond_sums.clear();
        if (tea) cond_skip.skip = uncond_skip.skip = skips[size_t(i)];
        s.step = i;
        s.ctx.where = concat("step ", i + 1, "/", steps);
        auto t_step = Clock::now();
        const double comm0 = s.ctx.stats.comm_s;
        const int64_t bytes0 = s.ctx.stats.bytes_sent;
        // Rank 0 decides on cancellation; every rank learns it at the same step.
        at::Tensor flag = at::full({1}, (s.ctx.rank == 0 && cancel && cancel->load()) ? 1 : 0, at::kInt);
        flag = s.world->broadcast(flag, 0, "cancel flag");
        if (flag.item<int>() != 0) {
          stop.record(step, 0, 0);
          throw RankCancelled(concat("cancelled at step ", step, "/", steps));
        }
        const FaultInjection& f = s.fault;  // test-only, off by default
        if (f.kind != FaultInjection::None && f.rank == s.ctx.rank && f.step == i) {
          if (f.kind == FaultInjection::Throw)
            fail("rank ", s.ctx.rank, " (", s.ctx.device_name, "): injected fault at ", s.ctx.where);
          if (f.kind == FaultInjection::Stall) {
            auto until = Clock::now() + f.stall;
            while (Clock::now() < until && !s.ctx.abort->load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
        const double t = sched.timesteps[i].item<float>();
        at::Tensor v = net.forward(x, t, ctx, shard, tea ? (uncond_branch ? &uncond_skip : &cond_skip) : nullptr, &hooks);
        if (cfg && s.cfg) {
          at::Tensor g = s.cfg->all_gather(v, "cfg velocity");  // [2, ...]: cond, uncond
          v = g[1] + r.cfg_scale * (g[0] - g[1]);
        } else if (cfg) {
          at::Tensor v_neg = net.forward(x, t, negative, shard, tea ? &uncond_skip : nullptr, &uncond_hooks);
          v = v_neg + r.cfg_scale * (v - v_neg);
        }
        x = sched.step(x, v, i);
        // Every rank holds the same x, so every rank fails here together (no collective waits).
        if (!all_finite(x)) {
          const char* pass = !cfg ? "" : s.cfg ? (uncond_branch ? "unconditional" : "conditional") : "conditional";
          fail_nonfinite_step(step, steps, A.num_layers, {{pass, &sums}, {"unconditional", &uncond_sums}});
        }
        s.step_s.push_back(seconds_since(t_step));
        s.step_comm_s.push_back(s.ctx.stats.comm_s - comm0);
        s.step_bytes.push_back(s.ctx.stats.bytes_sent - bytes0);
        log_debug("request ", s.request, ": ", s.ctx.where, " in ", s.step_s.back(), " s (comm ", s.step_comm_s.back(),
                  " s, ", s.step_bytes.back(), " bytes)");
        if (s.ctx.rank == group_->first_rank()) {
          step_s.push_back(s.step_s.back());
          on_step(i + 1, x);
        }
      }
      s.ctx.where.clear();
      s.peak_bytes = mem.peak_bytes();
      s.peak_method = mem.method();
      const double wall = seconds_since(t_request), comm = s.ctx.stats.comm_s;
      log_info("request ", s.request, ": done in ", wall, " s: compute ", wall - comm, " s, communication ", comm, " s, ",
               s.ctx.stats.bytes_sent, " bytes sent in ", s.ctx.stats.collectives, " collectives, ", s.ctx.stats.checks,
               " device checks, peak ", s.peak_bytes, " bytes allocated");
      if (s.ctx.rank == group_->first_rank()) result = x.to(at::kCPU);  // every rank holds the same x
    });
  } catch (const Error&) {
    if (stop.set) {
      if (stop.block > 0) cancelled_in_step(stop.step, steps, stop.block, stop.blocks);
      cancelled_in_step(stop.step, steps);
    }
    throw;
  }
  return result;
}

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

// `what` prefixes the parameter names ("budget video ").
void T2VEngine::check_video_size(int64_t height, int64_t width, int64_t num_frames, const char* what) const {
  const int64_t hw_factor = 8 * model_.arch.dit.patch[1];  // VAE stride 8 × DiT patch 2 = 16 for Wan2.1
  if (height < hw_factor || height % hw_factor != 0 || height > 4096)
    fail(what, "height must be a multiple of ", hw_factor, " between ", hw_factor, " and 4096, got ", height);
  if (width < hw_factor || width % hw_factor != 0 || width > 4096)
    fail(what, "width must be a multiple of ", hw_factor, " between ", hw_factor, " and 4096, got ", width);
  if (num_frames < 1 || (num_frames - 1) % 4 != 0 || num_frames > 1001)
    fail(what, "num_frames must be 4k+1 (1, 5, 9, ..., 81, ...) and at most 1001, got ", num_frames);
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
    const int64_t f = (r.num_frames - 1) / 4 + 1, z = model_.arch.vae.z_dim;
    const at::Tensor& l = r.input_latents;
    if (l.dim() != 4 || l.size(0) != z || l.size(1) != f || l.size(2) != r.height / 8 || l.size(3) != r.width / 8)
      fail_param("input_latents", "input_latents must be [", z, ", ", f, ", ", r.height / 8, ", ", r.width / 8,
                 "], got ", l.sizes());
  } else if (r.denoising_strength != 1.0) {
    fail_param("denoising_strength", "denoising_strength ", r.denoising_strength,
               " < 1 starts from a noised input video; give input_video");
  }
  on_field("prompt", [&] { check_prompt(r.prompt_ids, r.prompt_mask, "prompt", a.text_len); });
  if (r.cfg_scale != 1.0)
    on_field("negative_prompt", [&] { check_prompt(r.negative_ids, r.negative_mask, "negative prompt", a.text_len); });
  if (const std::string why = budget_problem(r); !why.empty()) fail(why);
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
  check_model_files();
  if (r.tea_cache_l1_thresh > 0) tea_cache_model(model_.arch.dit, r.tea_cache_model_id);
  nlohmann::json j = to_json(memory_plan(r));
  j["device"] = dit_place_.device.str();
  j["budget_bytes"] = memory_budget_;
  const std::string why = budget_problem(r);
  j["fits"] = why.empty();
  j["problem"] = why;
  return j;
}

T2VResult T2VEngine::generate(const T2VRequest& r, const std::function<void(const T2VEvent&)>& progress,
                              const std::atomic<bool>* cancel) const {
  validate(r);
  c10::NoGradGuard no_grad;
  auto report = [&](const char* stage, int64_t step, int64_t total, Clock::time_point t0,
                    const at::Tensor& latents = at::Tensor()) {
    if (!progress) return;
    double el = seconds_since(t0);
    progress({stage, step, total, el, step > 0 ? el / step * (total - step) : 0.0,
              latents});
  };
  T2VResult out;
  const bool cfg = r.cfg_scale != 1.0;
  const at::Device dev = dit_place_.device;
  // Peak bytes in live tensors per CUDA device and stage (the caching allocator's count): the
  // figures `wanlab inspect --budget` predicts.
  nlohmann::json stage_peaks = nlohmann::json::object();
  std::vector<at::Device> cuda_devices;  // the CUDA devices this request uses, each once
  for (const at::Device& d : {dev, t5_place_.device, vae_place_.device})
    if (d.is_cuda() && std::find(cuda_devices.begin(), cuda_devices.end(), d) == cuda_devices.end())
      cuda_devices.push_back(d);
  auto stage_start = [&] {
    for (const at::Device& d : cuda_devices) device_synchronize(d), reset_device_peak(d);
  };
  nlohmann::json reserved_peaks = nlohmann::json::object();  // the allocator's cache at its largest
  auto stage_end = [&](const char* stage) {
    for (const at::Device& d : cuda_devices) {
      device_synchronize(d);
      const DeviceMemory m = device_memory(d);
      stage_peaks[stage][d.str()] = m.peak_allocated;
      reserved_peaks[stage][d.str()] = m.peak_reserved;
    }
  };
  stage_start();

  // 1. the input video's latents (video-to-video; a follower node gets node 0's), then the
  //    prompts → embeddings [text_len, dim], zero past each prompt's length
  auto t_encode = Clock::now();
  const int prompts = cfg ? 2 : 1;
  int encode_total = prompts;  // and the video's chunks
  report("encode", 0, prompts, t_encode);
  at::Tensor input_latents = r.input_latents;  // [16, f, h, w] float32 on the CPU
  if (!input_latents.defined() && r.input_video.defined()) {
    const auto t_video = Clock::now();
    VaeEncodeOptions enc;
    enc.tiled = r.tiled;
    enc.tile_size = r.tile_size;
    enc.tile_stride = r.tile_stride;
    enc.progress = [&](int done, int total) {
      report("encode", done, encode_total = total + prompts, t_encode);
      if (done < total && cancel_set(cancel)) cancelled_in("encode", "input video chunk", "chunk", done + 1, total);
    };
    input_latents = vae_->encode(r.input_video.to(at::kFloat), enc);
    if (!all_finite(input_latents))
      fail("encoding the input video produced non-finite latents (NaN or Inf)", nonfinite_cause("VAE's"));
    out.timings["video_encode_s"] = seconds_since(t_video);
  }
  if (requests_ && node_rank_ == 0) publish(r, input_latents);  // nodes 1.. running follow() run it too
  int cached = 0;
  out.context = encode(r.prompt_ids, r.prompt_mask, cached, cancel);
  at::Tensor negative;
  if (cfg) negative = encode(r.negative_ids, r.negative_mask, cached, cancel).to(dev);
  const at::Tensor context = out.context.to(dev);  // [text_len, text_dim] float32, where the DiT runs
  report("encode", encode_total, encode_total, t_encode);
  out.timings["encode_s"] = seconds_since(t_encode);
  out.timings["encode_cached"] = cached;

  // 2. noise [1, z, f, h, w] exactly as DiffSynth draws it, then batch 1 dropped
  const int64_t f = (r.num_frames - 1) / 4 + 1, h = r.height / 8, w = r.width / 8;
  out.noise = initial_noise(r.seed, {1, model_.arch.vae.z_dim, f, h, w}).squeeze(0);

  // 3. flow-match sampling with CFG
  FlowMatchSchedule sched = wan_schedule(r.num_inference_steps, r.denoising_strength, r.sigma_shift);
  // TeaCache: which steps skip the blocks depends on the timesteps alone, so it is decided here,
  // once, for both CFG branches and every rank.
  std::vector<bool> skips;
  if (r.tea_cache_l1_thresh > 0) {
    skips = tea_cache_skips(*dits_.front(), sched, r.tea_cache_l1_thresh, r.tea_cache_model_id);
    nlohmann::json skipped = nlohmann::json::array();
    for (size_t i = 0; i < skips.size(); ++i)
      if (skips[i]) skipped.push_back(i);
    out.timings["tea_cache_skipped_steps"] = skipped;
  }
  // float32 latents: the sampler's state stays in float32. Video-to-video: DiffSynth's add_noise,
  // (1 - sigma_0) * input latents + sigma_0 * noise.
  at::Tensor x = out.noise;
  if (input_latents.defined()) {
    const at::Tensor sigma = sched.sigmas[0];
    x = (1 - sigma) * input_latents + sigma * out.noise;
  }
  x = x.to(dev);
  stage_end("encode");
  stage_start();
  auto t_denoise = Clock::now();
  nlohmann::json step_s = nlohmann::json::array();
  report("denoise", 0, sched.steps(), t_denoise);
  if (group_) {
    x = denoise_parallel(x, context, negative, r, sched, skips, step_s,
                         [&](int64_t done, const at::Tensor& xs) { report("denoise", done, sched.steps(), t_denoise, xs); }, cancel);
  }
  BlockSkip cond_skip, uncond_skip;  // TeaCache: the residual per CFG branch
  const bool tea = !skips.empty();
  const int64_t steps = sched.steps(), blocks = model_.arch.dit.num_layers;
  int64_t step = 0;  // 1-based, the step in progress
  std::vector<at::Tensor> cond_sums, uncond_sums;  // per block, this step (DitHooks)
  DitHooks cond_hooks, uncond_hooks;
  cond_hooks.in_block = [&](int64_t b, int64_t n) {
    if (cancel_set(cancel)) cancelled_in_step(step, steps, b + 1, n);
  };
  uncond_hooks.in_block = cond_hooks.in_block;
  cond_hooks.block_sums = &cond_sums, uncond_hooks.block_sums = &uncond_sums;
  for (int64_t i = 0; i < steps && !group_; ++i) {
    step = i + 1;
    if (cancel_set(cancel)) cancelled_in_step(step, steps);
    auto t_step = Clock::now();
    const double t = sched.timesteps[i].item<float>();
    if (tea) cond_skip.skip = uncond_skip.skip = skips[size_t(i)];
    cond_sums.clear(), uncond_sums.clear();
    at::Tensor v = dits_.front()->forward(x, t, context, tea ? &cond_skip : nullptr, &cond_hooks);
    if (cfg) {
      at::Tensor v_neg = dits_.front()->forward(x, t, negative, tea ? &uncond_skip : nullptr, &uncond_hooks);
      v = v_neg + r.cfg_scale * (v - v_neg);
    }
    x = sched.step(x, v, i);
    device_synchronize(dev);  // CUDA queues asynchronously: the step is done when the device is
    if (!all_finite(x))
      fail_nonfinite_step(step, steps, blocks, {{cfg ? "conditional" : "", &cond_sums}, {"unconditional", &uncond_sums}});
    step_s.push_back(seconds_since(t_step));
    report("denoise", i + 1, steps, t_denoise, x);
  }
  out.latents = x.to(at::kCPU);
  out.timings["denoise_s"] = seconds_since(t_denoise);
  out.timings["step_s"] = step_s;
  if (group_) {
    nlohmann::json ranks = nlohmann::json::array();
    // Per rank (this node's): compute = step wall time minus time inside collectives (waiting
    // included); bytes_sent = payload handed to collectives; peak_bytes = parallel/rank_memory.h.
    for (const RankStats& s : group_->stats()) {
      nlohmann::json step_compute = nlohmann::json::array();
      double wall = 0;
      for (size_t i = 0; i < s.step_s.size(); ++i) step_compute.push_back(s.step_s[i] - s.step_comm_s[i]), wall += s.step_s[i];
      ranks.push_back({{"rank", s.rank}, {"device", s.device}, {"compute_s", wall - s.comm.comm_s},
                       {"comm_s", s.comm.comm_s}, {"bytes_sent", s.comm.bytes_sent}, {"collectives", s.comm.collectives},
                       {"checks", s.comm.checks}, {"check_s", double(s.comm.checks) * group_->check_cost_s()},
                       {"peak_bytes", s.peak_bytes}, {"peak_method", s.peak_method}, {"step_s", s.step_s},
                       {"step_compute_s", step_compute}, {"step_comm_s", s.step_comm_s}, {"step_bytes", s.step_bytes}});
    }
    out.timings["ranks"] = ranks;
  }

  // 4. decode
  if (cancel_set(cancel))
    throw Cancelled("decode", sched.steps(), sched.steps(), "", 0, 0,
                    concat("cancelled before decode, after step ", sched.steps(), "/", sched.steps()));
  stage_end("denoise");
  stage_start();
  auto t_decode = Clock::now();
  VaeDecodeOptions dec;
  dec.tiled = r.tiled;
  dec.tile_size = r.tile_size;
  dec.tile_stride = r.tile_stride;
  dec.progress = [&](int done, int total) {
    report("decode", done, total, t_decode);
    if (done < total && cancel_set(cancel)) cancelled_in("decode", "chunk", "chunk", done + 1, total);
  };
  out.video = vae_->decode(x, dec);
  if (!all_finite(out.video))
    fail("decoding produced non-finite values (NaN) in the video from finite latents", nonfinite_cause("VAE's"));
  out.timings["decode_s"] = seconds_since(t_decode);
  stage_end("decode");
  if (!stage_peaks.empty()) out.timings["device_peak_bytes"] = stage_peaks;
  if (!reserved_peaks.empty()) out.timings["device_peak_reserved_bytes"] = reserved_peaks;
  // The memory model's figures for the same stages and device (models/memory_model.h).
  const MemoryPlan plan = memory_plan(r);
  out.timings["predicted_peak_bytes"] = {{"encode", {{dev.str(), plan.encode()}}},
                                         {"denoise", {{dev.str(), plan.denoise()}}},
                                         {"decode", {{dev.str(), plan.decode()}}}};
  out.timings["placement"] = placement();
  return out;
}

at::Tensor T2VEngine::encode(const at::Tensor& ids, const at::Tensor& mask, int& cached,
                             const std::atomic<bool>* cancel) const {
  if (at::Tensor hit = prompt_cache_.find(ids, mask); hit.defined()) {
    ++cached;
    return hit;
  }
  auto before_layer = [&](int64_t l, int64_t n) {
    if (cancel_set(cancel)) cancelled_in("encode", "text encoder layer", "layer", l + 1, n);
  };
  at::Tensor e = t5_->encode_prompt(ids.unsqueeze(0), mask.unsqueeze(0), before_layer).squeeze(0).to(at::kCPU);
  if (!all_finite(e))  // not kept in the prompt cache either
    fail("the text encoder produced non-finite values (NaN or Inf) in the prompt embedding",
         nonfinite_cause("text encoder's"));
  prompt_cache_.put(ids, mask, e);
  return e;
}

void save_result_tensors(const std::string& path, const T2VResult& result, const T2VRequest& request) {
  TensorMap t;
  t["noise"] = stored(result.noise.to(at::kFloat).contiguous());
  t["context"] = stored(result.context.to(at::kFloat).contiguous());
  t["latents"] = stored(result.latents.to(at::kFloat).contiguous());
  t["video"] = stored(result.video.to(at::kFloat).contiguous());
  t["token_ids"] = stored(request.prompt_ids.to(at::kLong).contiguous());
  save_safetensors(path, t, {{"seed", std::to_string(request.seed)}, {"producer", "wanlab"}});
}

}  // namespace wan

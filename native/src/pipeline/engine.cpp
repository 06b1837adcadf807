// T2VEngine's construction (devices resolved and checked, models placed, the device group and the
// request stream joined) and what it reports about where it runs (placement, memory now).
#include "pipeline/t2v.h"

#include <c10/core/GradMode.h>

#include <algorithm>

#include "common/cuda.h"
#include "common/log.h"
#include "parallel/layout_auto.h"
#include "parallel/preflight.h"
#include "pipeline/fork.h"

namespace wan {

namespace {
// A CUDA device that exists, or an error naming it and what is visible.
void check_cuda_device(int index, const std::string& what) {
  const int n = cuda_device_count();
  if (n == 0)
    fail(what, ": no CUDA device is visible", cuda_built() ? "" : " (this wanlab build has no CUDA)");
  if (index >= n) fail(what, ": cuda:", index, " does not exist (", n, " CUDA device", n == 1 ? "" : "s", " visible)");
}
}  // namespace

// The device list and transport are checked before anything loads (again below, on the loaded model).
T2VEngine::T2VEngine(const std::string& model_dir, const ParallelOptions& p, const ComputeOptions& c)
    : T2VEngine((check_group_devices(p.devices, p.transport), load_model(model_dir, true)), p, c) {}

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
  // "auto" resolved once; the list parsed, its GPUs present, one kind of rank, the transport chosen.
  const GroupDevices group = check_group_devices(p.devices, p.transport);
  const std::string &list = group.list, &why = group.why;
  if (p.devices.rfind("auto", 0) == 0) {  // "auto", or "auto:K" (--rendezvous env://: LOCAL_RANK K)
    devices_note_ = concat("auto: ", list, " (", why, ")");
    // A CUDA build that finds no GPU is the surprising case: say so where the run is watched.
    if (list == "cpu" && cuda_built()) log_warn("devices ", devices_note_, "; the DiT runs on the CPU in float32");
    else log_info("devices ", devices_note_);
  }
  const std::vector<DeviceSpec>& devices = group.devices;
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
  // The layout's inputs (parallel/layout_auto.h); several processes add the pre-flight's measurements.
  const DitArch& dit_arch = model_.arch.dit;
  LayoutInputs layout_in(world, int(dit_arch.num_heads), p.nnodes > 1 ? int(devices.size()) : 0, 0);
  layout_in.dim = dit_arch.dim, layout_in.ffn_dim = dit_arch.ffn_dim, layout_in.layers = dit_arch.num_layers;
  layout_in.elem_bytes = int(c10::elementSize(dtype));
  if (p.layout == "auto") {
    if (p.ulysses || p.ring || p.cfg_parallel)
      fail("layout auto chooses ulysses, ring and cfg parallel itself; give either layout auto or the degrees");
  } else if (!p.layout.empty()) {
    fail("layout must be \"auto\" (or left out to give the degrees), got '", p.layout, "'");
  } else {
    layout_ = make_layout(world, p.ulysses, p.ring, p.cfg_parallel ? 2 : 1, int(dit_arch.num_heads));
  }
  // Several processes: the pre-flight check (parallel/preflight.h) before any weights load, its
  // store handed on to the device group, its link and compute figures to the layout.
  std::shared_ptr<Rendezvous> store;
  if (p.nnodes > 1) {
    PreflightOptions pre;
    pre.host = rdv_host, pre.port = rdv_port, pre.nnodes = p.nnodes, pre.node_rank = p.node_rank;
    pre.devices = devices;
    pre.transport = group.transport;
    pre.timeout = std::chrono::milliseconds(int64_t(std::min(p.timeout_s, 60.0) * 1000));
    pre.model = weights_fingerprint(model_);
    pre.probe_head_dim = dit_arch.dim / std::max<int64_t>(1, dit_arch.num_heads);
    const PreflightResult checked = preflight(pre);
    store = checked.store;
    layout_in.links = checked.links;
    // Ranks sharing a host share its fast links: a node of the layout rule is a host, not a process.
    layout_in.ranks_per_node = checked.hosts.ranks_per_node;
    layout_in.unit = checked.hosts.unit, layout_in.grouping = checked.hosts.text;
  }
  if (p.layout == "auto") {
    // The degrees from the ranks, the heads, the nodes and the measured links and compute.
    const LayoutChoice choice = auto_layout(layout_in);
    layout_ = choice.layout;
    layout_reason_ = "auto: " + choice.reason;
    log_info("layout ", layout_reason_);
  } else if (p.nnodes > 1) {
    // A given ring across a slow link where layout auto keeps it within nodes: warned, and the
    // warning is the layout's reason in the sidecar and the manifest.
    const std::string warning = review_layout(layout_in, layout_);
    if (!warning.empty()) log_warn(warning), layout_reason_ = warning;
  }
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
  // Ranks sharing a GPU (a test mode) share its DiT as CPU ranks share the host's.
  ranks_on_dit_device_ = first.is_cpu() || group.shared ? int(devices.size()) : 1;
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
    if ((d.type == "cpu" || group.shared) && !shard_weights_) break;
  }
  vae_ = std::make_unique<WanVAE>(model_.vae, model_.arch.vae, vae_place_);
  // The models hold what they need; in-memory weights (random ones) are not kept twice.
  fingerprint_ = dit_fingerprint(model_);
  model_.dit.clear(), model_.t5.clear(), model_.vae.clear();
  const LogLevel log_level = p.log_level.empty() ? env_log_level() : parse_log_level(p.log_level);
  if (world > 1) {
    DeviceGroupOptions o;
    o.logger = std::make_shared<Logger>(log_level, p.log_dir, p.node_rank);
    o.devices = devices;
    o.rendezvous_host = rdv_host, o.rendezvous_port = rdv_port;
    o.nnodes = p.nnodes, o.node_rank = p.node_rank;
    o.store = store;
    o.layout = layout_;
    o.timeout = std::chrono::milliseconds(int64_t(p.timeout_s * 1000));
    o.transport = group.transport;
    group_ = std::make_unique<DeviceGroup>(o);
  }
  nnodes_ = p.nnodes, node_rank_ = p.node_rank;
  if (p.nnodes > 1)
    requests_ = Rendezvous::join(rdv_host, uint16_t(rdv_port), std::chrono::milliseconds(int64_t(p.timeout_s * 1000)));
}

T2VEngine::~T2VEngine() = default;

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
          {"dit_loras", loras()},
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

}  // namespace wan

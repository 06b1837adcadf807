#include "tools/inspect.h"

#include "models/memory_model.h"

#include <filesystem>
#include <map>

#include "checkpoint/layout.h"
#include "common/cuda.h"
#include "common/error.h"
#include "common/json_limits.h"
#include "common/mapped_file.h"
#include "models/dit.h"
#include "models/latent_grid.h"
#include "models/lora_merge.h"
#include "parallel/devices.h"
#include "parallel/layout_auto.h"
#include "pipeline/engine_options.h"
#include "pipeline/json_fields.h"

namespace fs = std::filesystem;

namespace wan {

namespace {

nlohmann::json component_json(const TensorMap& t, const nlohmann::json& arch, const ComponentFiles& files,
                              const std::string& dir) {
  std::map<std::string, int64_t> dtypes;
  int64_t params = 0, bytes = 0, scaled = 0;
  for (const auto& [_, v] : t) {
    dtypes[dtype_name(v.dtype)] += 1;
    scaled += v.scale != 1.0f;
    params += v.data.numel();
    bytes += v.data.numel() * static_cast<int64_t>(dtype_size(v.dtype));
  }
  nlohmann::json f = nlohmann::json::array();
  int64_t disk = 0;
  for (const auto& p : files.files) {
    int64_t n = static_cast<int64_t>(fs::file_size(p));
    disk += n;
    f.push_back({{"path", fs::relative(p, dir).string()}, {"bytes", n}});
  }
  return {{"arch", arch},   {"tensors", t.size()}, {"params", params}, {"dtypes", dtypes}, {"scaled_f8", scaled},
          {"bytes", bytes}, {"files", f},          {"bytes_on_disk", disk}};
}

nlohmann::json tokenizer_json(const std::string& dir) {
  fs::path p = fs::path(dir) / "tokenizer.json";
  if (!fs::is_regular_file(p)) return {{"dir", dir}, {"found", false}};
  const std::string file = p.string();
  const nlohmann::json j = read_json_file(file, kTokenizerJson);
  int64_t vocab = 0;
  std::string type;
  if (j.contains("model")) {
    const nlohmann::json& model = j["model"];
    if (!model.is_object()) fail(file, ": \"model\" must be an object, got ", json_describe(model));
    if (model.contains("vocab")) {
      if (!model["vocab"].is_array() && !model["vocab"].is_object())
        fail(file, ": \"model.vocab\" must be a list or an object, got ", json_describe(model["vocab"]));
      vocab = static_cast<int64_t>(model["vocab"].size());
    }
    if (model.contains("type")) type = json_string(model, "type", file + " (model)");
  }
  int64_t size = vocab;
  if (j.contains("added_tokens")) {
    const nlohmann::json& added = j["added_tokens"];
    if (!added.is_array()) fail(file, ": \"added_tokens\" must be a list, got ", json_describe(added));
    for (size_t i = 0; i < added.size(); ++i)
      if (added[i].is_object() && added[i].contains("id"))
        size = std::max<int64_t>(size, json_int(added[i], "id", concat(file, " (added_tokens[", i, "])"), 0,
                                                int64_t(1) << 31) + 1);
  }
  return {{"dir", dir}, {"found", true}, {"model", type}, {"pieces", vocab}, {"size", size}};
}

// Peak memory per device, by parts and stages, from the memory model (models/memory_model.h):
// weights are replicated per GPU rank (DiT in the compute dtype: bf16 on CUDA, f32 on CPU), the
// UMT5 and the VAE run on the first rank, DiT activations are per rank for its share of the tokens.
// Ranks on one memory share one DiT, as the engine places them (T2VEngine: ranks_on_dit_device):
// CPU ranks (threads of one host) and ranks sharing a GPU ("cuda:0x4", a test mode) hold one DiT
// (with sharded weights one shard each) beside every rank's activations and streamed blocks.
nlohmann::json memory_json(const ModelArch& a, bool dit_f8, const InspectOptions& o) {
  const ParallelOptions& po = o.engine.parallel;
  const ComputeOptions& co = o.engine.compute;
  const std::string list = resolve_devices(po.devices);  // what the estimate is for
  auto devices = parse_devices(list);
  const int64_t tokens = latent_grid(o.num_frames, o.height, o.width).tokens(a.dit.patch);
  // The layout as the engine would pick it (T2VEngine's constructor), "auto" by the rule of
  // parallel/layout_auto.h with this video's tokens known, so a layout that cannot work is refused here.
  ParallelLayout l;
  std::string reason;
  if (po.layout == "auto") {
    if (po.ulysses || po.ring || po.cfg_parallel)
      fail("layout auto chooses ulysses, ring and cfg parallel itself; give either layout auto or the degrees");
    const LayoutChoice c = auto_layout({static_cast<int>(devices.size()), static_cast<int>(a.dit.num_heads), 0, tokens});
    l = c.layout;
    reason = "auto: " + c.reason;
  } else if (!po.layout.empty()) {
    fail("layout must be \"auto\" (or left out to give the degrees), got '", po.layout, "'");
  } else {
    l = make_layout(static_cast<int>(devices.size()), po.ulysses, po.ring, po.cfg_parallel ? 2 : 1,
                    static_cast<int>(a.dit.num_heads));
  }
  const bool cuda = devices[0].type == "cuda";
  const bool shared = shares_device(devices);  // several ranks on one GPU
  MemoryPlanOptions mo;
  mo.height = o.height, mo.width = o.width, mo.num_frames = o.num_frames;
  mo.sequence_parallel = l.sequence_parallel();
  mo.persistent_params = co.persistent_params;
  mo.t5_on_device = co.t5_device != "cpu";
  mo.t5_offload = co.t5_offload;
  mo.tiled = o.tiled;
  mo.shard_weights = co.shard_weights;
  mo.bytes_per_value = cuda ? 2 : 4;
  mo.gpu = cuda;
  mo.dit_f8 = dit_f8;
  if (co.shard_weights && l.sequence_parallel() < 2)
    fail("--shard-weights needs ulysses x ring >= 2 ranks per CFG branch; the layout has ", l.sequence_parallel());
  if (co.t5_offload && (!cuda || co.t5_device == "cpu"))
    fail("--t5-offload keeps a CUDA text encoder's weights in host memory between prompts; here it runs on the CPU (devices '",
         list, "'", co.t5_device == "cpu" ? ", --t5-device cpu" : "", ")");
  if (co.persistent_params >= 0 && !cuda) fail("--persistent-params streams DiT blocks to a CUDA device; devices are '", list, "'");
  // LoRA working copies on each DiT copy (models/lora_merge.h), as the engine's plan counts them.
  std::vector<LoraUse> set;
  for (const T2VRequest::Lora& r : o.loras) set.push_back({load_lora(r.path, a.dit, r.strict), r.scale});
  if (!set.empty())
    mo.lora_bytes = lora_working_bytes(set, cuda ? at::kBFloat16 : at::kFloat, a.dit,
                                       co.shard_weights ? l.sequence_parallel() : 1);
  const MemoryPlan p = plan_memory(a, mo);
  const int64_t sp = l.sequence_parallel();
  nlohmann::json j = {{"devices", list},
                      {"device_count", devices.size()},
                      {"ulysses", l.ulysses},
                      {"ring", l.ring},
                      {"cfg", l.cfg},
                      {"video", {{"height", o.height}, {"width", o.width}, {"num_frames", o.num_frames}}},
                      {"tokens", tokens},
                      {"tokens_per_rank", (tokens + sp - 1) / sp},
                      {"weight_dtype", std::string(cuda ? "BF16" : "F32") + (dit_f8 ? " + F8 block linears" : "")},
                      {"dit_weights_bytes", p.dit_resident},
                      {"dit_streamed_bytes", p.dit_streamed},
                      {"dit_lora_bytes", p.dit_lora},
                      {"dit_activation_bytes", p.dit_activations},
                      {"t5_weights_bytes", p.t5},
                      {"t5_streamed_bytes", p.t5_streamed},
                      {"vae_weights_bytes", p.vae},
                      {"vae_decode_bytes", p.vae_activations},
                      {"stages", {{"encode", p.encode()}, {"denoise", p.denoise()}, {"decode", p.decode()}}},
                      {"rank0_peak_bytes", p.peak()},
                      // Beside a GPU: the streamed DiT blocks and an offloaded text encoder (pinned), a
                      // CPU text encoder in float32.
                      {"host_bytes", p.host()},
                      {"host_pinned_bytes", p.host_pinned},
                      {"host_t5_bytes", p.host_t5},
                      {"host_activation_bytes", p.host_activations},
                      // What each other rank holds itself: a GPU of its own takes its DiT copy; a
                      // shared GPU's ranks share rank 0's DiT (unless each keeps a shard of it).
                      {"other_rank_peak_bytes", devices.size() < 2 ? 0
                                                : shared && !co.shard_weights ? p.dit_streamed + p.dit_activations
                                                                              : p.dit_resident + p.dit_lora + p.dit_streamed + p.dit_activations}};
  if (!reason.empty()) j["layout_reason"] = reason;  // layout auto: which rule picked each degree
  // CPU ranks are threads of one host, and ranks sharing a GPU share its memory: what they hold
  // together is what a budget is held to, as the engine counts it (T2VEngine: ranks_on_dit_device).
  MemoryPlanOptions host = mo;
  host.ranks_on_device = cuda && !shared ? 1 : int(devices.size());
  if (co.shard_weights) host.lora_bytes *= host.ranks_on_device;  // CPU ranks: one sharded DiT each
  const MemoryPlan hp = plan_memory(a, host);
  if (!cuda && devices.size() > 1) j["host_ranks_peak_bytes"] = hp.peak();
  if (shared) {  // the GPU's ranks together
    j["shared_device"] = true;
    j["device_ranks_peak_bytes"] = hp.peak();
  }
  const int64_t budget = co.memory_budget;
  if (budget > 0 || budget == kAutoBudget) {
    std::string how;
    const at::Device first = aten_device(devices[0]);
    if (budget == kAutoBudget && cuda && first.index() >= cuda_device_count())
      fail("--budget auto reads ", first.str(), "'s memory, and this machine sees ", cuda_device_count(),
           " CUDA devices; give the budget in bytes (24G) to inspect for a GPU that is elsewhere");
    const int64_t bytes = budget == kAutoBudget ? auto_memory_budget(first, &how) : budget;
    const int64_t need = persistent_params_for_budget(a, host, bytes);
    j["budget"] = {{"bytes", bytes},
                   {"auto", how},
                   {"fits", hp.peak() <= bytes},
                   {"persistent_params", need},
                   {"note", need == -1 ? "fits with every DiT weight resident"
                            : need == -2 ? "does not fit even with every DiT block streamed (try --t5-device cpu or --t5-offload, --tiled, more ranks)"
                                         : "largest --persistent-params whose predicted peak fits"}};
    // How long a video fits at the two sizes Wan2.1 is trained for (the orientation does not
    // change the memory), untiled and tiled.
    nlohmann::json longest = nlohmann::json::array();
    for (const auto& [h, w] : {std::pair{480, 832}, std::pair{720, 1280}})
      for (const bool tiled : {false, true}) {
        MemoryPlanOptions lo = host;
        lo.height = h, lo.width = w, lo.tiled = tiled;
        const LongestVideo v = longest_video(a, lo, bytes);
        longest.push_back({{"height", h}, {"width", w}, {"tiled", tiled}, {"resident_frames", v.resident},
                           {"streamed_frames", v.streamed}});
      }
    j["budget"]["longest"] = longest;
  }
  return j;
}

}  // namespace

InspectOptions inspect_options_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ParamError("inspect options", concat("the inspect options must be a JSON object, got ", json_describe(j)));
  InspectOptions o;
  bool cfg2 = false;
  nlohmann::json engine = nlohmann::json::object();
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const nlohmann::json& v = item.value();
    if (k == "height") o.height = int(json_field_int(v, k, k, 1, 1 << 20));
    else if (k == "width") o.width = int(json_field_int(v, k, k, 1, 1 << 20));
    else if (k == "numFrames") o.num_frames = int(json_field_int(v, k, k, 1, 1 << 20));
    else if (k == "tiled") o.tiled = json_field_bool(v, k, k);
    else if (k == "cfg") cfg2 = json_field_int(v, k, k, 1, 2) == 2;
    else if (k == "loras") o.loras = request_from_json({{"loras", v}}, /*need_prompt=*/false).loras;
    else if (k == "devices" || k == "ulysses" || k == "ring" || k == "cfgParallel" || k == "layout" || k == "budget" ||
             k == "persistentParams" || k == "t5Device" || k == "t5Offload" || k == "shardWeights")
      engine[k] = v;
    else
      throw ParamError(k, concat("unknown inspect option '", k, "' (known: height, width, numFrames, tiled, cfg, loras, devices, ulysses, ",
                                 "ring, cfgParallel, layout, budget, persistentParams, t5Device, t5Offload, shardWeights)"));
  }
  if (!engine.contains("devices")) engine["devices"] = o.engine.parallel.devices;  // "auto"
  o.engine = engine_options_from_json(engine);
  o.engine.parallel.cfg_parallel = o.engine.parallel.cfg_parallel || cfg2;
  return o;
}

nlohmann::json inspect_model(const std::string& dir, const InspectOptions& opts) {
  if (opts.height <= 0 || opts.height % 16 || opts.width <= 0 || opts.width % 16)
    fail("height and width must be positive multiples of 16, got ", opts.height, "x", opts.width);
  if (!valid_frame_count(opts.num_frames))
    fail("num_frames must be 4k+1 (1, 5, 9, ..., 81), got ", opts.num_frames);
  LoadedModel m = load_model(dir, true);
  nlohmann::json dit = component_json(m.dit, to_json(m.arch.dit), m.files.dit, dir);
  nlohmann::json t5 = component_json(m.t5, to_json(m.arch.t5), m.files.t5, dir);
  nlohmann::json vae = component_json(m.vae, to_json(m.arch.vae), m.files.vae, dir);
  int64_t disk = dit["bytes_on_disk"].get<int64_t>() + t5["bytes_on_disk"].get<int64_t>() +
                 vae["bytes_on_disk"].get<int64_t>();
  return {{"dir", dir},
          {"layout", layout_name(m.files.layout)},
          {"components", {{"dit", dit}, {"t5", t5}, {"vae", vae}}},
          {"tokenizer", tokenizer_json(m.files.tokenizer_dir)},
          {"bytes_on_disk", disk},
          {"memory", memory_json(m.arch, dit_keeps_f8(m.dit), opts)}};
}

}  // namespace wan

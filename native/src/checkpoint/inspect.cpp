#include "checkpoint/inspect.h"

#include <filesystem>
#include <map>

#include "checkpoint/layout.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "parallel/devices.h"

namespace fs = std::filesystem;

namespace wan {

namespace {

nlohmann::json component_json(const TensorMap& t, const nlohmann::json& arch, const ComponentFiles& files,
                              const std::string& dir) {
  std::map<std::string, int64_t> dtypes;
  int64_t params = 0, bytes = 0;
  for (const auto& [_, v] : t) {
    dtypes[dtype_name(v.dtype)] += 1;
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
  return {{"arch", arch},   {"tensors", t.size()}, {"params", params}, {"dtypes", dtypes},
          {"bytes", bytes}, {"files", f},          {"bytes_on_disk", disk}};
}

nlohmann::json tokenizer_json(const std::string& dir) {
  fs::path p = fs::path(dir) / "tokenizer.json";
  if (!fs::is_regular_file(p)) return {{"dir", dir}, {"found", false}};
  auto j = nlohmann::json::parse(read_text_file(p.string()), nullptr, false);
  if (j.is_discarded()) fail(p.string(), ": not valid JSON");
  int64_t vocab = 0;
  if (j.contains("model") && j["model"].contains("vocab")) vocab = static_cast<int64_t>(j["model"]["vocab"].size());
  int64_t size = vocab;
  if (j.contains("added_tokens"))
    for (const auto& t : j["added_tokens"]) size = std::max<int64_t>(size, t.value("id", int64_t(0)) + 1);
  std::string type = j.contains("model") ? j["model"].value("type", "") : "";
  return {{"dir", dir}, {"found", true}, {"model", type}, {"pieces", vocab}, {"size", size}};
}

// Peak memory per device, by parts. Weights are replicated per rank (DiT in the compute dtype:
// bf16 on CUDA, f32 on CPU); the T5 (bf16) and VAE run on the first rank. DiT activations are
// per rank for its share of the tokens: the f32 residual stream and its modulated copies,
// q/k/v (Ulysses trades sequence for heads without changing the element count), two ring
// buffers for k/v in flight, and the FFN hidden layer. The VAE decode figure is untiled.
nlohmann::json memory_json(const ModelArch& a, int64_t dit_params, int64_t t5_params, int64_t vae_params,
                           const InspectOptions& o) {
  auto devices = parse_devices(o.devices);
  ParallelLayout l =
      make_layout(static_cast<int>(devices.size()), o.ulysses, o.ring, o.cfg, static_cast<int>(a.dit.num_heads));
  const bool cuda = devices[0].type == "cuda";
  const int64_t wb = cuda ? 2 : 4;  // weight / activation bytes per element
  const int64_t lat_t = (o.num_frames - 1) / 4 + 1, lat_h = o.height / 8, lat_w = o.width / 8;
  const int64_t tokens = lat_t * (lat_h / a.dit.patch[1]) * (lat_w / a.dit.patch[2]) / a.dit.patch[0];
  const int64_t sp = l.sequence_parallel();
  const int64_t per_rank = (tokens + sp - 1) / sp;
  const int64_t D = a.dit.dim, F = a.dit.ffn_dim;
  const int64_t dit_weights = dit_params * wb;
  const int64_t activations = per_rank * (4 * D * 4 + wb * (3 * D + 2 * D + F)) + a.dit.text_len * D * wb * 2;
  const int64_t t5_weights = t5_params * 2;
  const int64_t vae_weights = vae_params * wb;
  const int64_t vae_decode = 3 * a.vae.dim * 4 * int64_t(o.height) * o.width * 4;
  const int64_t rank0 = dit_weights + activations + t5_weights + vae_weights + vae_decode;
  const int64_t others = dit_weights + activations;
  return {{"devices", o.devices},
          {"device_count", devices.size()},
          {"ulysses", l.ulysses},
          {"ring", l.ring},
          {"cfg", l.cfg},
          {"video", {{"height", o.height}, {"width", o.width}, {"num_frames", o.num_frames}}},
          {"tokens", tokens},
          {"tokens_per_rank", per_rank},
          {"weight_dtype", cuda ? "BF16" : "F32"},
          {"dit_weights_bytes", dit_weights},
          {"dit_activation_bytes", activations},
          {"t5_weights_bytes", t5_weights},
          {"vae_weights_bytes", vae_weights},
          {"vae_decode_bytes", vae_decode},
          {"rank0_peak_bytes", rank0},
          {"other_rank_peak_bytes", devices.size() > 1 ? others : 0}};
}

}  // namespace

nlohmann::json inspect_model(const std::string& dir, const InspectOptions& opts) {
  if (opts.height <= 0 || opts.height % 16 || opts.width <= 0 || opts.width % 16)
    fail("height and width must be positive multiples of 16, got ", opts.height, "x", opts.width);
  if (opts.num_frames < 1 || (opts.num_frames - 1) % 4)
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
          {"memory", memory_json(m.arch, dit["params"], t5["params"], vae["params"], opts)}};
}

}  // namespace wan

#include "tools/bench_models.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "tools/doctor.h"
#include "tools/model_flops.h"
#include "tools/median.h"
#include "formats/safetensors.h"
#include "common/cuda.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/proc_status.h"
#include "models/dit.h"
#include "models/latent_grid.h"
#include "models/placement.h"
#include "models/random_weights.h"
#include "models/umt5.h"
#include "models/vae.h"

namespace fs = std::filesystem;

namespace wan {

namespace {

// ---- measurement ------------------------------------------------------------------------------

// Resets VmHWM to the current RSS (Linux >= 4.0); false where not allowed.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

struct Timed {
  std::vector<double> times;
  at::Tensor out;
  int64_t rss_before = 0, peak_rss = 0;
  bool peak_reset = false;
  at::Device device{at::kCPU};
  int64_t device_before = 0, device_peak = 0;  // CUDA: allocated bytes before the forwards, and the peak
};

Timed time_forward(const std::function<at::Tensor()>& fn, int warmup, int iters, const at::Device& device) {
  Timed r;
  r.device = device;
  r.peak_reset = reset_peak_rss();
  r.rss_before = proc_status_bytes("VmRSS:");
  device_synchronize(device);
  reset_device_peak(device);
  r.device_before = device_memory(device).allocated;
  for (int i = 0; i < warmup; ++i) r.out = fn();
  device_synchronize(device);
  for (int i = 0; i < iters; ++i) {
    r.out = at::Tensor();  // the previous output is not part of this forward's memory
    auto t0 = std::chrono::steady_clock::now();
    r.out = fn();
    device_synchronize(device);
    r.times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  r.out = r.out.to(at::kCPU);
  r.peak_rss = proc_status_bytes("VmHWM:");
  r.device_peak = device_memory(device).peak_allocated;
  return r;
}

nlohmann::json side_json(const Timed& t, double flops) {
  double med = median_of(t.times);
  double mn = t.times.empty() ? 0 : *std::min_element(t.times.begin(), t.times.end());
  return {{"times_s", t.times},
          {"median_s", med},
          {"min_s", mn},
          {"gflops_per_s", med > 0 ? flops / med / 1e9 : 0.0},
          {"rss_before_bytes", t.rss_before},
          {"peak_rss_bytes", t.peak_rss},
          {"peak_rss_delta_bytes", t.peak_rss - t.rss_before},
          {"peak_reset", t.peak_reset},
          {"device", t.device.str()},
          {"device_weights_bytes", t.device_before},
          {"device_peak_bytes", t.device_peak},
          {"device_activation_peak_bytes", t.device_peak - t.device_before}};
}

// ---- the peer ---------------------------------------------------------------------------------

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "wanlab-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) fail("bench: cannot create a temporary directory from ", tmpl);
    path = tmpl;
  }
  ~TempDir() { remove_tree(path); }
};

// Runs argv with stdout and stderr to files; returns the exit status (-1: could not start).
int run_process(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out >= 0) dup2(out, 1);
    if (err >= 0) dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string read_text(const std::string& path, size_t max_tail = 2000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.size() > max_tail ? "..." + s.substr(s.size() - max_tail) : s;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

Placement bench_placement(const BenchOptions& o) {
  const at::Device d = parse_device(o.device);
  return {d, o.dtype.empty() ? default_compute_dtype(d) : parse_compute_dtype(o.dtype)};
}

struct PeerResult {
  nlohmann::json json;  // null when unavailable
  std::string reason;
  at::Tensor out;
};

// Writes the weights and inputs, runs bench/peer.py, reads its JSON and output tensor.
PeerResult run_peer(const BenchOptions& o, const std::string& kind, const nlohmann::json& arch,
                    const TensorMap& weights, const TensorMap& inputs, const nlohmann::json& extra) {
  PeerResult r;
  if (!o.peer) return {nullptr, "disabled (--no-peer)", {}};
  std::string script = o.peer_script.empty() ? env_or("WANLAB_PEER_SCRIPT", "") : o.peer_script;
  if (script.empty() || !fs::exists(script))
    return {nullptr, concat("peer script not found ('", script, "'; set WANLAB_PEER_SCRIPT to bench/peer.py)"), {}};
  std::string diffsynth = o.diffsynth.empty() ? env_or("DIFFSYNTH_DIR", "") : o.diffsynth;
  if (diffsynth.empty() || !fs::exists(fs::path(diffsynth) / "diffsynth"))
    return {nullptr,
            diffsynth.empty() ? "no DiffSynth-Studio source tree (give --diffsynth DIR or set DIFFSYNTH_DIR)"
                              : concat("'", diffsynth, "' is not a DiffSynth-Studio source tree (no diffsynth/ in it)"),
            {}};
  std::string python = o.python.empty() ? env_or("WANLAB_PYTHON", "python3") : o.python;

  TempDir tmp;
  const std::string dir = tmp.path;
  int probe = run_process({python, "-c", "import torch"}, dir + "/probe.out", dir + "/probe.err");
  if (probe == 127 || probe < 0) return {nullptr, concat("cannot run '", python, "' (set WANLAB_PYTHON or --python)"), {}};
  if (probe != 0)
    return {nullptr, concat("'", python, "' cannot import torch (set WANLAB_PYTHON or --python): ",
                            read_text(dir + "/probe.err", 300)), {}};
  // CPU: the weights travel as a file. CUDA: `extra` carries {"random": {seed, specs}} and the
  // peer draws the same weights on the device itself (no 28 GB file for the 14B).
  if (!weights.empty()) save_safetensors(dir + "/weights.safetensors", weights);
  save_safetensors(dir + "/input.safetensors", inputs);
  const Placement p = bench_placement(o);
  nlohmann::json spec = {{"kind", kind},       {"arch", arch},          {"warmup", o.warmup},
                         {"iters", o.iters},   {"threads", at::get_num_threads()},
                         {"diffsynth", diffsynth},
                         {"device", p.device.str()}, {"dtype", placement_name(p).substr(p.device.str().size() + 1)},
                         {"weights", weights.empty() ? nlohmann::json() : nlohmann::json(dir + "/weights.safetensors")},
                         {"input", dir + "/input.safetensors"},
                         {"output", dir + "/output.safetensors"},   {"result", dir + "/result.json"}};
  for (auto& [k, v] : extra.items()) spec[k] = v;
  std::ofstream(dir + "/spec.json") << spec.dump(2);
  int rc = run_process({python, script, dir + "/spec.json"}, dir + "/peer.out", dir + "/peer.err");
  if (rc == 127) return {nullptr, concat("cannot run '", python, "'"), {}};
  if (rc != 0 || !fs::exists(dir + "/result.json"))
    return {nullptr, concat("peer failed (exit ", rc, "): ", read_text(dir + "/peer.err")), {}};
  std::ifstream in(dir + "/result.json");
  r.json = nlohmann::json::parse(in);
  TensorMap out = load_safetensors(dir + "/output.safetensors", false);
  auto it = out.find("out");
  if (it == out.end()) fail("bench: the peer's output.safetensors has no tensor 'out'");
  r.out = to_float32(it->second);
  r.json["python"] = python;
  return r;
}

// ---- shared -----------------------------------------------------------------------------------

// Random weights for `specs`, stored as bf16 (random_tensor's values are exact in bf16), drawn on
// `device` (CUDA: the device's generator; see models/random_weights.h).
TensorMap random_weights(const std::vector<TensorSpec>& specs, uint64_t seed, const at::Device& device = at::kCPU) {
  TensorMap m;
  for (const auto& s : specs) m[s.name] = stored(random_tensor(s, seed, device).to(at::kBFloat16));
  return m;
}

// What the peer needs to draw the same weights on a CUDA device.
nlohmann::json random_spec(const std::vector<TensorSpec>& specs, uint64_t seed) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : specs) list.push_back({{"name", s.name}, {"shape", s.shape}});
  return {{"seed", seed}, {"specs", list}};
}

// Runs the peer on the bench's random weights for `specs` and `inputs`, then returns ours. CPU:
// the peer reads the same weights from a file. CUDA: the peer draws them itself (extra "random"),
// ours are drawn after it ran, so the two never share the device's memory.
TensorMap peer_then_weights(const BenchOptions& o, const std::string& kind, const nlohmann::json& arch,
                            const std::vector<TensorSpec>& specs, const Placement& p, const TensorMap& inputs,
                            PeerResult& peer) {
  if (p.device.is_cpu()) {
    TensorMap weights = random_weights(specs, o.seed);
    peer = run_peer(o, kind, arch, weights, inputs, nlohmann::json::object());
    return weights;
  }
  peer = run_peer(o, kind, arch, {}, inputs, {{"random", random_spec(specs, o.seed)}});
  return random_weights(specs, o.seed, p.device);
}

void apply_threads(const BenchOptions& o) {
  if (o.threads < 0) fail("bench: --threads must be >= 0, got ", o.threads);
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (o.warmup < 0 || o.iters < 1) fail("bench: need --warmup >= 0 and --iters >= 1, got ", o.warmup, " and ", o.iters);
}

// The report both benches share: ours, the peer, the comparison.
nlohmann::json report(const std::string& kind, const BenchOptions& o, const nlohmann::json& arch,
                      const nlohmann::json& input, double flops, const std::string& formula, const Timed& ours,
                      const PeerResult& peer) {
  nlohmann::json j = {{"bench", kind},
                      {"dims", o.dims},
                      {"arch", arch},
                      {"input", input},
                      {"seed", o.seed},
                      {"threads", at::get_num_threads()},
                      {"warmup", o.warmup},
                      {"iters", o.iters},
                      {"flops", flops},
                      {"flops_formula", formula},
                      {"memory_note",
                       "peak_rss_bytes is VmHWM of the whole process (weights included), reset just before "
                       "the forwards; peak_rss_delta_bytes = peak - RSS before the forwards"}};
  j["ours"] = side_json(ours, flops);
  const Placement p = bench_placement(o);
  j["ours"]["impl"] = concat("wanlab C++ (libtorch ", libtorch_version(), ", ", placement_name(p), ")");
  j["device"] = p.device.is_cuda() ? cuda_device_name(p.device) : "cpu";
  if (peer.json.is_null()) {
    j["peer"] = nullptr;
    j["peer_reason"] = peer.reason;
    j["rel_l2_ours_vs_peer"] = nullptr;
    j["ratio_peer_over_ours"] = nullptr;
    return j;
  }
  j["peer"] = peer.json;
  j["peer"]["gflops_per_s"] = peer.json.value("median_s", 0.0) > 0 ? flops / peer.json["median_s"].get<double>() / 1e9 : 0.0;
  at::Tensor a = ours.out.to(at::kDouble), b = peer.out.to(at::kDouble);
  if (a.sizes() != b.sizes())
    fail("bench ", kind, ": our output ", a.sizes(), " and the peer's ", b.sizes(), " differ in shape");
  j["rel_l2_ours_vs_peer"] = (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-300);
  j["ratio_peer_over_ours"] = peer.json["median_s"].get<double>() / median_of(ours.times);
  return j;
}

at::Generator input_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed * 0x9E3779B97F4A7C15ull + 12345);
}

int pick(int v, int fallback) { return v >= 0 ? v : fallback; }

// The latent grid of a video size a bench was given, refused unless it is frames = 4k + 1 and
// height, width positive multiples of `multiple` (8 for the VAE, 8 x the patch for the DiT).
LatentGrid bench_grid(const char* kind, int frames, int height, int width, int64_t mh, int64_t mw) {
  if (!valid_frame_count(frames) || height < mh || height % mh || width < mw || width % mw)
    fail("bench ", kind, ": need frames = 4k+1 and height, width positive multiples of ",
         mh == mw ? concat(mh) : concat(mh, " and ", mw), ", got ", frames, "x", height, "x", width);
  return latent_grid(frames, height, width);
}

// The layers to build: --layers, else all of the preset's on tiny dims or CUDA, else 2 (a CPU
// forward of a whole 1.3B or 14B model takes minutes); refused below 1.
int64_t bench_layers(const BenchOptions& o, const Placement& place, int64_t preset, const char* kind) {
  const int64_t n = pick(o.layers, o.dims == "tiny" || place.device.is_cuda() ? int(preset) : 2);
  if (n < 1) fail("bench ", kind, ": --layers must be >= 1, got ", n);
  return n;
}

// One model benchmark: what the peer receives and the report names.
struct BenchCase {
  std::string kind;               // "dit", "vae", "t5"
  nlohmann::json arch;
  std::vector<TensorSpec> specs;  // the model's weights
  TensorMap inputs;               // the forward's inputs, as the peer reads them
  nlohmann::json input;           // the inputs, as the report describes them
  double flops = 0;
  std::string formula;            // how `flops` is counted
};

// Runs the peer, then ours: `build` makes our model from the weights and returns its forward
// (owning the model); the weight map is freed before the forwards are timed.
nlohmann::json measure(const BenchOptions& o, const Placement& place, const BenchCase& c,
                       const std::function<std::function<at::Tensor()>(const TensorMap&)>& build) {
  PeerResult peer;
  TensorMap weights = peer_then_weights(o, c.kind, c.arch, c.specs, place, c.inputs, peer);
  std::function<at::Tensor()> forward = build(weights);
  weights.clear();
  Timed ours = time_forward(forward, o.warmup, o.iters, place.device);
  return report(c.kind, o, c.arch, c.input, c.flops, c.formula, ours, peer);
}

}  // namespace

// ---- DiT --------------------------------------------------------------------------------------

nlohmann::json bench_dit(const BenchOptions& o) {
  apply_threads(o);
  const Placement place = bench_placement(o);
  DitArch a = preset_arch(o.dims).dit;
  bool tiny = o.dims == "tiny";
  a.num_layers = bench_layers(o, place, a.num_layers, "dit");
  // Default: 5 frames of 480x832 (1.3B/14B): latents [16, 2, 60, 104], 3120 tokens.
  const int frames = pick(o.frames, 5), height = pick(o.height, tiny ? 64 : 480), width = pick(o.width, tiny ? 64 : 832);
  const LatentGrid grid = bench_grid("dit", frames, height, width, 8 * a.patch[1], 8 * a.patch[2]);
  const int64_t f = grid.frames, h = grid.height, w = grid.width;
  if (f % a.patch[0]) fail("bench dit: ", f, " latent frames are not a multiple of the patch's ", a.patch[0]);
  const int64_t tokens = grid.tokens(a.patch);
  const int64_t Lc = a.text_len;

  at::Generator gen = input_generator(o.seed);
  at::Tensor x = at::randn({a.in_dim, f, h, w}, gen, at::kFloat);  // [16, f, h, w]
  at::Tensor context = at::randn({Lc, a.text_dim}, gen, at::kFloat);  // [512, text_dim]
  const double timestep = 500;
  at::Tensor t = at::full({1}, timestep, at::kFloat);

  nlohmann::json input = {{"frames", frames}, {"height", height}, {"width", width},
                          {"latents", {a.in_dim, f, h, w}}, {"tokens", tokens}, {"text_len", Lc},
                          {"timestep", timestep},
                          {"fraction_of_480p_81_frames", double(tokens) / 32760.0}};
  BenchCase c{"dit", to_json(a), dit_specs(a),
              {{"x", stored(x)}, {"timestep", stored(t)}, {"context", stored(context)}}, input,
              dit_flops(a, tokens, Lc),
              "layers*(8LD^2 + 4L^2D + 4LD^2 + 4LcD^2 + 4LLcD + 4LDF) + 2LD*in*patch + 2Lc(text_dim*D + D^2) "
              "+ 2(freq*D + 7D^2) + 2LD*out*patch"};
  return measure(o, place, c, [&](const TensorMap& weights) {
    auto dit = std::make_shared<WanDiT>(weights, a, DitOptions{place});
    const at::Tensor xd = x.to(place.device), cd = context.to(place.device);
    return std::function<at::Tensor()>([dit, xd, cd, timestep] { return dit->forward(xd, timestep, cd); });
  });
}

// ---- VAE --------------------------------------------------------------------------------------

nlohmann::json bench_vae(const BenchOptions& o) {
  apply_threads(o);
  const Placement place = bench_placement(o);
  VaeArch a = preset_arch(o.dims).vae;
  if (o.layers >= 0) fail("bench vae: --layers does not apply (the VAE is benchmarked whole)");
  bool tiny = o.dims == "tiny";
  // Default: 5 frames of 128x128 (latents [16, 2, 16, 16]), decoded untiled.
  const int frames = pick(o.frames, 5), height = pick(o.height, tiny ? 64 : 128), width = pick(o.width, tiny ? 64 : 128);
  const LatentGrid grid = bench_grid("vae", frames, height, width, 8, 8);
  const int64_t f = grid.frames, h = grid.height, w = grid.width;

  at::Generator gen = input_generator(o.seed);
  at::Tensor z = at::randn({a.z_dim, f, h, w}, gen, at::kFloat);  // [16, f, h, w]
  nlohmann::json input = {{"frames", frames}, {"height", height}, {"width", width}, {"latents", {a.z_dim, f, h, w}},
                          {"tiled", false},
                          {"fraction_of_480p_81_frames", double(frames * height * width) / (81.0 * 480 * 832)}};
  BenchCase c{"vae", to_json(a), vae_specs(a), {{"z", stored(z)}}, input, vae_decode_flops(a, f, h, w),
              "sum over convs of 2 * output voxels * C_in * C_out * kernel volume, chunk by chunk, "
              "+ 4 (hw)^2 C per frame of middle attention"};
  return measure(o, place, c, [&](const TensorMap& weights) {
    auto vae = std::make_shared<WanVAE>(weights, a, place);
    VaeDecodeOptions d;
    d.tiled = false;
    return std::function<at::Tensor()>([vae, z, d] { return vae->decode(z, d); });
  });
}

// ---- T5 ---------------------------------------------------------------------------------------

nlohmann::json bench_t5(const BenchOptions& o) {
  apply_threads(o);
  const Placement place = bench_placement(o);
  T5Arch a = preset_arch(o.dims).t5;
  a.num_layers = bench_layers(o, place, a.num_layers, "t5");
  const int64_t L = pick(o.tokens, 512);
  if (L < 1) fail("bench t5: --tokens must be >= 1, got ", L);
  if (o.frames >= 0 || o.height >= 0 || o.width >= 0) fail("bench t5: use --tokens, not --frames/--height/--width");

  at::Generator gen = input_generator(o.seed);
  // ids [1, L]: a prompt filling all L positions, </s> (1) last; ids 0-2 are special.
  at::Tensor ids = at::randint(3, a.vocab, {1, L}, gen, at::kLong);
  ids.index_put_({0, L - 1}, 1);
  at::Tensor mask = at::ones({1, L}, at::kLong);
  nlohmann::json input = {{"tokens", L}, {"batch", 1}, {"padding", 0}};
  BenchCase c{"t5", to_json(a), t5_specs(a), {{"ids", stored(ids)}, {"mask", stored(mask)}}, input, t5_flops(a, L),
              "layers*(8 L D Da + 4 L^2 Da + 6 L D F)"};
  return measure(o, place, c, [&](const TensorMap& weights) {
    auto t5 = std::make_shared<Umt5Encoder>(weights, a, place);
    return std::function<at::Tensor()>([t5, ids, mask] { return t5->forward(ids, mask); });
  });
}

}  // namespace wan

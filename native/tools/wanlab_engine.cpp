// wanlab-engine: the engine's command line for machines without Node (GPU boxes, parity runs,
// benchmarks). Prints JSON on stdout; errors go to stderr with exit code 1 (2 for usage).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include "tools/bench_device.h"
#include "tools/bench_models.h"
#include "tools/bench_overlap.h"
#include "tools/bench_pipeline.h"
#include "tools/bench_projection.h"
#include "tools/device_parity.h"
#include "tools/doctor.h"
#include "tools/links.h"
#include "tools/engine_flags.h"
#include "tools/generate_file.h"
#include "tools/inspect.h"
#include "tools/bench_lora.h"
#include "tools/load_bench.h"
#include "tools/make_model.h"
#include "common/error.h"
#include "pipeline/t2v.h"

namespace {

const char* kUsageHead = R"(usage: wanlab-engine COMMAND [options]

commands:
  doctor [--devices LIST [--transport gloo|nccl] [--rendezvous tcp://HOST:PORT --nnodes N --node-rank K]
         [--timeout S]]
      what this build and machine can run, checked by running it: libtorch (CUDA, NCCL), what
      --devices auto picks, each CUDA device's paths (bf16 matmul, SDPA, ring parts, own kernels);
      JSON, exit 1 when a problem is found. With --devices: that group's pre-flight check and its
      links instead (all-to-all, all-gather, send/recv: latency and bytes/s per message size)
)";
// The commands whose options are the engine's (tools/engine_flags.h): their flags and usage text
// come from its table.
const std::vector<std::string> kInspectFlags = {"--devices", "--ulysses", "--ring", "--cfg-parallel", "--layout",
                                                "--height", "--width", "--num-frames", "--budget",
                                                "--persistent-params", "--t5-device", "--t5-offload", "--tiled",
                                                "--shard-weights"};
const char* kInspectHelp = R"(      layout, files, architecture, parameters, dtypes and memory per device, as JSON; --layout auto
      picks ulysses, ring and cfg parallel for the devices as a load would (memory.ulysses, ring,
      cfg) and says which rule picked each (memory.layout_reason)
)";
const std::vector<std::string> kGenerateFlags = {
    "--devices", "--ulysses", "--ring", "--cfg-parallel", "--transport", "--timeout", "--rendezvous", "--nnodes",
    "--node-rank", "--log-dir", "--log-level", "--dtype", "--t5-device", "--t5-offload", "--vae-device", "--persistent-params",
    "--shard-weights", "--budget", "--budget-height", "--budget-width", "--budget-frames", "--budget-tiled",
    "--prompt-cache-bytes"};
const char* kGenerateHelp = R"(      one generation of the request in REQ.json (the API's request keys: promptIds, promptMask,
      negativeIds, negativeMask as token ids, seed, height, width, numFrames, numInferenceSteps,
      cfgScale, ...; text to video) on an engine opened with these options; prints the run's
      timings as JSON; --save-tensors writes noise, context, latents, video and token_ids;
      --timesteps replaces the schedule with those timesteps (in (0, 1000], decreasing), shifted
      by the request's sigmaShift as LightX2V shifts its denoising_step_list. Nodes
      1.. of a multi-node group (--node-rank K) follow node 0's requests instead; --lora
      (repeatable) adds a LoRA on the DiT at SCALE (default 1) after the request's loras
)";
const char* kUsageTail = R"(  make-tiny OUT [--layout official|sharded|diffusers|comfyui|comfyui-fp8] [--seed N] [--dims tiny|1.3B|14B]
      write a deterministic random-weight Wan2.1 T2V model in a published layout
  bench-lora DIR [--rank N] [--steps N] [--height N --width N --frames N] [--devices LIST]
      a random LoRA of that rank on every block linear: seconds to read it, to switch the loaded
      engine to it, to another scale and back to the base, against reopening the model, and the
      denoising step with and without it (cfg 1), as JSON
  bench-load DIR [--copy] [--touch]
      load time and resident memory of the whole model (mmap by default), as JSON
  bench dit|vae|t5 [--dims tiny|1.3B|14B] [--layers N] [--frames N --height N --width N]
                   [--tokens N] [--iters N] [--warmup N] [--threads N] [--seed N]
                   [--device cpu|cuda[:N]] [--dtype f32|bf16|f16]
                   [--diffsynth DIR] [--python PATH] [--no-peer]
      forward time, GFLOP/s and peak memory on random weights, against PyTorch eager running
      DiffSynth-Studio's module on the same weights and input (bench/peer.py), as JSON.
      Defaults: dit 1.3B dims, 2 blocks (all on CUDA), 5 frames of 480x832 (3120 tokens); vae
      real dims, decode of 5 frames of 128x128; t5 real dims, 2 layers (all on CUDA), 512 tokens;
      warmup 1, iters 3. On CUDA both sides run in bf16 on weights drawn on the device.
      The peer runs with --python or $WANLAB_PYTHON (else python3) and --diffsynth or
      $DIFFSYNTH_DIR; without them "peer" is null and "peer_reason" says why.
  bench matmul [--device cuda] [--size 8192] [--iters 10]
      the dense bf16 matmul rate (TFLOP/s): the compute ceiling the other figures are compared to
  bench attention [--device cuda] [--tokens 32760] [--heads 12] [--head-dim 128] [--iters 5]
      each SDPA backend (auto, flash, cudnn, efficient) at the DiT's self-attention shape
  bench elementwise [--device cuda] [--dims 1.3B|14B] [--tokens 32760] [--iters 10]
      the DiT block's norm/modulation/RoPE/residual passes against one fused pass at the copy
      bandwidth: what an own kernel could save per forward
  bench overlap [--layout ring|ulysses] [--ranks 2] [--tokens 4096] [--heads 12] [--head-dim 128]
                [--iters 5]
      sequence-parallel attention on CPU thread ranks (Gloo), the engine's schedule (transfers
      beside compute) against the sequential one in the same command: time per call, exposed
      communication, and the ratio
  bench projection [--dims tiny|1.3B|14B] [--height 480 --width 832 --frames 81] [--steps 50]
                   [--cfg-scale 5] [--gpus 1,2,4,8,16] [--layouts L1,L2] [--shard-weights]
                   [--link nvlink4|ib400|pcie4] [--links DOCTOR.json] [--inter-link ib400]
                   [--gpus-per-node 8] [--blocks 2] [--warmup 1] [--iters 3] [--device cpu|cuda[:N]]
                   [--dtype ...] [--heads N] [--threads N] [--seed N] [--measured PREVIOUS.json]
      seconds per step and for --steps steps on N GPUs per layout (1, uN, rN, uNrM, cfg, cfg-uN,
      cfg-uNrM; -shard for sharded weights): one rank's blocks measured on this device at its
      real shapes, the engine's collectives modelled over the links (stated presets, or the
      JSON `wanlab doctor --devices ... --json` writes) through the engine's overlap schedule;
      speed-up, efficiency, the public anchors and the goals, as JSON; --measured projects a
      previous run's measurements again (other links or steps) without timing anything
  bench t2v --random-weights 1.3B|14B [--device cuda] [--frames 81 --height 480 --width 832]
            [--steps 3] [--full-steps 50] [--cfg-scale 5] [--tiled] [--t5-device cpu|cuda] [--t5-offload]
            [--v2v-strength S]
            [--persistent-params N] [--budget BYTES|auto] [--attention auto|flash|cudnn|efficient|math]
            [--dtype ...] [--dit-f8]
      the whole pipeline on random real-size weights held in memory (no files): seconds per
      stage and step, peak device memory beside the memory model's prediction, TFLOP/s per step
      against the measured matmul peak, and the full run's estimate against its FLOP bound.
      --budget: the engine keeps the DiT blocks that fit beside this video (persistent params chosen;
      auto: the device's memory less 1.5 GB); --dit-f8: the DiT's block linears as a float8 e4m3
      checkpoint holds them (kept at 1 B per weight, decoded at each use; libtorch >= 2.1)
  parity DIR [--device cuda] [--dtype bf16] [--height N --width N --frames N --steps N] [--cfg-scale X]
             [--persistent-params N]
      the engine on DEVICE/DTYPE against itself on the CPU in float32 (which matches
      DiffSynth-Studio): relative L2 per component (T5, DiT, VAE, whole generation), as JSON
)";

// A command line that cannot be taken (unknown option, missing value, not a number, wrong
// positional count): exit 2 with the usage hint, like an unknown command. Errors in what the
// command does (a missing file, a value the engine refuses) stay exit 1.
std::string usage_text() {
  return std::string(kUsageHead) + "  inspect DIR [--lora FILE[:SCALE]]... " + wan::flags_usage(kInspectFlags, 14) + "\n" + kInspectHelp +
         "  generate DIR --request REQ.json [--save-tensors OUT.safetensors] [--timesteps T1,T2,...]\n"
         "              [--lora FILE[:SCALE]]... " +
         wan::flags_usage(kGenerateFlags, 14) + "\n" + kGenerateHelp + kUsageTail;
}

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
template <typename... A>
[[noreturn]] void usage(const A&... a) {
  throw UsageError(wan::concat(a...));
}

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // "--flag" -> value ("" for switches)
  std::vector<std::string> loras;              // --lora FILE[:SCALE], repeatable, in order
};

Args parse(int argc, char** argv, const std::vector<std::string>& switches) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    bool is_switch = false;
    for (const auto& w : switches) is_switch = is_switch || w == s;
    if (is_switch) {
      a.options[s] = "";
    } else if (s == "--lora") {
      if (i + 1 >= argc) usage("option --lora needs a value");
      a.loras.push_back(argv[++i]);
    } else {
      if (i + 1 >= argc) usage("option ", s, " needs a value");
      a.options[s] = argv[++i];
    }
  }
  return a;
}

int int_option(const Args& a, const std::string& name, int fallback) {
  auto it = a.options.find(name);
  return it == a.options.end() ? fallback : wan::parse_int_flag(name, it->second);
}

int64_t count_option(const Args& a, const std::string& name) { return wan::parse_count_flag(name, a.options.at(name)); }

// The engine flags `names` given on the command line, decoded by `decode` (the addon's decoder of
// the same JSON): a value the decoder refuses is a usage error naming the flag.
template <typename Decode>
auto decode_flags(const Args& a, const std::vector<std::string>& names, Decode decode) {
  try {
    return decode(wan::flags_to_json(a.options, names));
  } catch (const wan::ParamError& e) {
    usage(wan::flag_of_key(e.field), ": ", e.what());
  }
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void check_known(const Args& a, const std::vector<std::string>& known) {
  if (!a.loras.empty() && std::find(known.begin(), known.end(), "--lora") == known.end()) usage("unknown option --lora");
  for (const auto& [k, _] : a.options) {
    bool ok = false;
    for (const auto& n : known) ok = ok || n == k;
    if (!ok) usage("unknown option ", k);
  }
}

// The --lora FILE[:SCALE] flags: the text after the last ':' without a '/' is the scale.
std::vector<wan::T2VRequest::Lora> lora_flags(const Args& a) {
  std::vector<wan::T2VRequest::Lora> out;
  for (const std::string& l : a.loras) {
    const size_t colon = l.rfind(':');
    const bool scaled = colon != std::string::npos && l.find('/', colon) == std::string::npos;
    const std::string file = scaled ? l.substr(0, colon) : l;
    if (file.empty()) usage("--lora needs FILE[:SCALE], got '", l, "'");
    out.push_back({file, scaled ? wan::parse_number_flag("--lora", l.substr(colon + 1)) : 1.0, true});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage_text();
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "inspect") {
      Args a = parse(argc, argv, with(wan::switch_flags(kInspectFlags), {"--json"}));
      check_known(a, with(kInspectFlags, {"--json", "--lora"}));
      if (a.positional.size() != 1) usage("inspect needs exactly one model directory");
      wan::InspectOptions o = decode_flags(a, kInspectFlags, wan::inspect_options_from_json);
      o.loras = lora_flags(a);
      std::cout << wan::inspect_model(a.positional[0], o).dump(2) << "\n";
    } else if (cmd == "generate") {
      Args a = parse(argc, argv, wan::switch_flags(kGenerateFlags));
      check_known(a, with(kGenerateFlags, {"--request", "--save-tensors", "--timesteps", "--lora"}));
      if (a.positional.size() != 1) usage("generate needs exactly one model directory");
      wan::GenerateFileOptions o;
      o.model_dir = a.positional[0];
      o.engine = decode_flags(a, kGenerateFlags, wan::engine_options_from_json);
      if (!a.options.count("--request") && o.engine.parallel.node_rank == 0) usage("generate needs --request REQ.json");
      if (a.options.count("--request")) o.request_path = a.options["--request"];
      if (a.options.count("--save-tensors")) o.save_tensors = a.options["--save-tensors"];
      if (a.options.count("--timesteps")) {  // 1000,750,500,250
        std::stringstream list(a.options["--timesteps"]);
        for (std::string t; std::getline(list, t, ',');) o.timesteps.push_back(wan::parse_number_flag("--timesteps", t));
        if (o.timesteps.empty()) usage("--timesteps needs a comma-separated list, e.g. 1000,750,500,250");
      }
      o.loras = lora_flags(a);
      o.progress = [](const wan::T2VEvent& e) {
        std::fprintf(stderr, "%s %lld/%lld %.1f s\n", e.stage.c_str(), (long long)e.step, (long long)e.total, e.elapsed_s);
      };
      std::cout << wan::generate_from_file(o).dump(2) << "\n";
    } else if (cmd == "doctor") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--devices", "--transport", "--rendezvous", "--nnodes", "--node-rank", "--timeout"});
      if (!a.positional.empty()) usage("doctor takes no arguments");
      if (a.options.count("--devices") || a.options.count("--rendezvous")) {  // the group's check and links
        nlohmann::json o = {{"devices", a.options.count("--devices") ? a.options["--devices"] : "auto"}};
        if (a.options.count("--transport")) o["transport"] = a.options["--transport"];
        if (a.options.count("--rendezvous")) o["rendezvous"] = a.options["--rendezvous"];
        if (a.options.count("--nnodes")) o["nnodes"] = wan::parse_int_flag("--nnodes", a.options["--nnodes"]);
        if (a.options.count("--node-rank")) o["nodeRank"] = wan::parse_int_flag("--node-rank", a.options["--node-rank"]);
        if (a.options.count("--timeout")) o["timeoutS"] = wan::parse_number_flag("--timeout", a.options["--timeout"]);
        std::cout << wan::links_report(o).dump(2) << "\n";
        return 0;
      }
      const nlohmann::json r = wan::doctor_report();
      std::cout << r.dump(2) << "\n";
      return r["ok"].get<bool>() ? 0 : 1;
    } else if (cmd == "make-tiny") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--layout", "--seed", "--dims"});
      if (a.positional.size() != 1) usage("make-tiny needs exactly one output directory");
      wan::MakeModelOptions o;
      if (a.options.count("--layout")) o.layout = a.options["--layout"];
      if (a.options.count("--dims")) o.dims = a.options["--dims"];
      if (a.options.count("--seed")) {
        const std::string& s = a.options["--seed"];
        if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20)
          usage("--seed must be an integer from 0 to 2^64-1, got '", s, "'");
        o.seed = std::stoull(s);
      }
      o.progress = [](const std::string& file, double f) {
        if (!file.empty()) std::fprintf(stderr, "[%3.0f%%] writing %s\n", f * 100, file.c_str());
      };
      wan::make_model(a.positional[0], o);
      std::cout << "{\"out\": \"" << a.positional[0] << "\"}\n";
    } else if (cmd == "bench-lora") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--rank", "--steps", "--height", "--width", "--frames", "--devices"});
      if (a.positional.size() != 1) usage("bench-lora needs exactly one model directory");
      wan::BenchLoraOptions o;
      o.rank = int_option(a, "--rank", int(o.rank)), o.steps = int_option(a, "--steps", int(o.steps));
      o.height = int_option(a, "--height", int(o.height)), o.width = int_option(a, "--width", int(o.width));
      o.frames = int_option(a, "--frames", int(o.frames));
      if (a.options.count("--devices")) o.devices = a.options["--devices"];
      std::cout << wan::bench_lora(a.positional[0], o).dump(2) << "\n";
    } else if (cmd == "bench-load") {
      Args a = parse(argc, argv, {"--copy", "--touch"});
      check_known(a, {"--copy", "--touch"});
      if (a.positional.size() != 1) usage("bench-load needs exactly one model directory");
      std::cout << wan::bench_load(a.positional[0], !a.options.count("--copy"), a.options.count("--touch") > 0).dump(2)
                << "\n";
    } else if (cmd == "parity") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--device", "--dtype", "--height", "--width", "--frames", "--steps", "--persistent-params",
                      "--cfg-scale"});
      if (a.positional.size() != 1) usage("parity needs exactly one model directory");
      wan::ParityOptions o;
      if (a.options.count("--device")) o.device = a.options["--device"];
      if (a.options.count("--dtype")) o.dtype = a.options["--dtype"];
      o.height = int_option(a, "--height", o.height);
      o.width = int_option(a, "--width", o.width);
      o.frames = int_option(a, "--frames", o.frames);
      o.steps = int_option(a, "--steps", o.steps);
      if (a.options.count("--cfg-scale")) o.cfg_scale = std::stod(a.options["--cfg-scale"]);
      if (a.options.count("--persistent-params")) o.persistent_params = count_option(a, "--persistent-params");
      std::cout << wan::device_parity(a.positional[0], o).dump(2) << "\n";
    } else if (cmd == "bench" && argc > 2 && (std::string(argv[2]) == "matmul" || std::string(argv[2]) == "attention")) {
      Args a = parse(argc, argv, {});
      const bool mm = std::string(argv[2]) == "matmul";
      if (mm) check_known(a, {"--device", "--size", "--iters"});
      else check_known(a, {"--device", "--tokens", "--heads", "--head-dim", "--iters"});
      const std::string dev = a.options.count("--device") ? a.options["--device"] : "cuda";
      nlohmann::json r = mm ? wan::bench_matmul(dev, int_option(a, "--size", 8192), int_option(a, "--iters", 10))
                            : wan::bench_attention(dev, int_option(a, "--tokens", 32760), int_option(a, "--heads", 12),
                                                   int_option(a, "--head-dim", 128), int_option(a, "--iters", 5));
      std::cout << r.dump(2) << "\n";
    } else if (cmd == "bench" && argc > 2 && std::string(argv[2]) == "elementwise") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--device", "--dims", "--tokens", "--iters"});
      const wan::DitArch dit = wan::preset_arch(a.options.count("--dims") ? a.options["--dims"] : "1.3B").dit;
      std::cout << wan::bench_elementwise(a.options.count("--device") ? a.options["--device"] : "cuda",
                                          int_option(a, "--tokens", 32760), dit.dim, dit.num_heads, dit.ffn_dim,
                                          dit.num_layers, int_option(a, "--iters", 10))
                       .dump(2)
                << "\n";
    } else if (cmd == "bench" && argc > 2 && std::string(argv[2]) == "overlap") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--layout", "--ranks", "--tokens", "--heads", "--head-dim", "--iters"});
      std::cout << wan::bench_overlap(a.options.count("--layout") ? a.options["--layout"] : "ring",
                                      int_option(a, "--ranks", 2), int_option(a, "--tokens", 4096),
                                      int_option(a, "--heads", 12), int_option(a, "--head-dim", 128),
                                      int_option(a, "--iters", 5))
                       .dump(2)
                << "\n";
    } else if (cmd == "bench" && argc > 2 && std::string(argv[2]) == "projection") {
      Args a = parse(argc, argv, {"--shard-weights"});
      check_known(a, {"--dims", "--heads", "--device", "--dtype", "--height", "--width", "--frames", "--steps",
                      "--cfg-scale", "--gpus", "--layouts", "--shard-weights", "--blocks", "--warmup", "--iters",
                      "--threads", "--seed", "--link", "--links", "--inter-link", "--gpus-per-node", "--measured"});
      wan::ProjectionBenchOptions o;
      if (a.options.count("--dims")) o.dims = a.options["--dims"];
      if (a.options.count("--device")) o.device = a.options["--device"];
      if (a.options.count("--dtype")) o.dtype = a.options["--dtype"];
      if (a.options.count("--link")) o.link = a.options["--link"];
      if (a.options.count("--links")) o.links_file = a.options["--links"];
      if (a.options.count("--inter-link")) o.inter_link = a.options["--inter-link"];
      if (a.options.count("--measured")) o.measured_file = a.options["--measured"];
      o.heads = int_option(a, "--heads", o.heads);
      o.height = int_option(a, "--height", o.height), o.width = int_option(a, "--width", o.width);
      o.frames = int_option(a, "--frames", o.frames), o.steps = int_option(a, "--steps", o.steps);
      o.blocks = int_option(a, "--blocks", o.blocks), o.warmup = int_option(a, "--warmup", o.warmup);
      o.iters = int_option(a, "--iters", o.iters), o.threads = int_option(a, "--threads", o.threads);
      o.gpus_per_node = int_option(a, "--gpus-per-node", o.gpus_per_node);
      o.seed = static_cast<uint64_t>(int_option(a, "--seed", 0));
      if (a.options.count("--cfg-scale")) o.cfg_scale = wan::parse_number_flag("--cfg-scale", a.options["--cfg-scale"]);
      o.shard_weights = a.options.count("--shard-weights") > 0;
      auto list = [&](const std::string& flag) {
        std::vector<std::string> out;
        std::stringstream in(a.options[flag]);
        for (std::string t; std::getline(in, t, ',');)
          if (!t.empty()) out.push_back(t);
        if (out.empty()) usage(flag, " needs a comma-separated list");
        return out;
      };
      if (a.options.count("--gpus")) {
        o.gpus.clear();
        for (const auto& g : list("--gpus")) o.gpus.push_back(wan::parse_int_flag("--gpus", g));
      }
      if (a.options.count("--layouts")) o.layouts = list("--layouts");
      std::cout << wan::bench_projection(o).dump(2) << "\n";
    } else if (cmd == "bench" && argc > 2 && std::string(argv[2]) == "t2v") {
      Args a = parse(argc, argv, {"--tiled", "--dit-f8", "--t5-offload"});
      check_known(a, {"--random-weights", "--device", "--dtype", "--frames", "--height", "--width", "--steps",
                      "--full-steps", "--cfg-scale", "--tiled", "--t5-device", "--t5-offload", "--persistent-params", "--budget",
                      "--v2v-strength",
                      "--attention", "--seed", "--peak-tflops", "--dit-f8"});
      wan::PipelineBenchOptions o;
      if (!a.options.count("--random-weights")) usage("bench t2v needs --random-weights tiny|1.3B|14B");
      o.dims = a.options["--random-weights"];
      if (a.options.count("--device")) o.device = a.options["--device"];
      if (a.options.count("--dtype")) o.dtype = a.options["--dtype"];
      if (a.options.count("--t5-device")) o.t5_device = a.options["--t5-device"];
      o.t5_offload = a.options.count("--t5-offload") > 0;
      if (a.options.count("--attention")) o.attention = a.options["--attention"];
      if (a.options.count("--persistent-params")) o.persistent_params = count_option(a, "--persistent-params");
      if (a.options.count("--budget"))
        o.memory_budget = a.options["--budget"] == "auto" ? wan::kAutoBudget : count_option(a, "--budget");
      o.frames = int_option(a, "--frames", o.frames);
      o.height = int_option(a, "--height", o.height);
      o.width = int_option(a, "--width", o.width);
      o.steps = int_option(a, "--steps", o.steps);
      o.full_steps = int_option(a, "--full-steps", o.full_steps);
      o.seed = static_cast<uint64_t>(int_option(a, "--seed", 0));
      o.tiled = a.options.count("--tiled") > 0;
      o.dit_f8 = a.options.count("--dit-f8") > 0;
      if (a.options.count("--cfg-scale")) o.cfg_scale = std::stod(a.options["--cfg-scale"]);
      if (a.options.count("--peak-tflops")) o.peak_tflops = std::stod(a.options["--peak-tflops"]);
      if (a.options.count("--v2v-strength")) o.v2v_strength = std::stod(a.options["--v2v-strength"]);
      std::cout << wan::bench_t2v(o).dump(2) << "\n";
    } else if (cmd == "bench") {
      Args a = parse(argc, argv, {"--no-peer"});
      check_known(a, {"--dims", "--layers", "--frames", "--height", "--width", "--tokens", "--iters", "--warmup",
                      "--threads", "--seed", "--diffsynth", "--python", "--no-peer", "--device", "--dtype"});
      if (a.positional.size() != 1) usage("bench needs one target: dit, vae, t5, matmul, attention, elementwise, overlap, projection or t2v");
      const std::string& what = a.positional[0];
      wan::BenchOptions o;
      if (a.options.count("--dims")) o.dims = a.options["--dims"];
      o.layers = int_option(a, "--layers", -1);
      o.frames = int_option(a, "--frames", -1);
      o.height = int_option(a, "--height", -1);
      o.width = int_option(a, "--width", -1);
      o.tokens = int_option(a, "--tokens", -1);
      o.iters = int_option(a, "--iters", o.iters);
      o.warmup = int_option(a, "--warmup", o.warmup);
      o.threads = int_option(a, "--threads", 0);
      o.seed = static_cast<uint64_t>(int_option(a, "--seed", 0));
      o.peer = !a.options.count("--no-peer");
      if (a.options.count("--device")) o.device = a.options["--device"];
      if (a.options.count("--dtype")) o.dtype = a.options["--dtype"];
      if (a.options.count("--diffsynth")) o.diffsynth = a.options["--diffsynth"];
      if (a.options.count("--python")) o.python = a.options["--python"];
#ifdef WANLAB_SOURCE_DIR
      o.peer_script = WANLAB_SOURCE_DIR "/bench/peer.py";
#endif
      if (const char* s = std::getenv("WANLAB_PEER_SCRIPT"); s && *s) o.peer_script = s;
      nlohmann::json r;
      if (what == "dit") r = wan::bench_dit(o);
      else if (what == "vae") r = wan::bench_vae(o);
      else if (what == "t5") r = wan::bench_t5(o);
      else usage("unknown bench target '", what, "' (allowed: dit, vae, t5, matmul, attention, elementwise, overlap, projection, t2v)");
      std::cout << r.dump(2) << "\n";
    } else {
      std::cerr << "wanlab-engine: unknown command '" << cmd << "'\n" << usage_text();
      return 2;
    }
  } catch (const UsageError& e) {
    std::cerr << "wanlab-engine " << cmd << ": " << e.what() << " (wanlab-engine --help for usage)\n";
    return 2;
  } catch (const wan::FlagError& e) {
    std::cerr << "wanlab-engine " << cmd << ": " << e.what() << " (wanlab-engine --help for usage)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "wanlab-engine " << cmd << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

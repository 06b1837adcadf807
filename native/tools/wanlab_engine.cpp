// wanlab-engine: the engine's command line for machines without Node (GPU boxes, parity runs,
// benchmarks). Prints JSON on stdout; errors go to stderr with exit code 1 (2 for usage).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_models.h"
#include "checkpoint/inspect.h"
#include "checkpoint/load_bench.h"
#include "checkpoint/make_model.h"
#include "common/error.h"

namespace {

const char* kUsage = R"(usage: wanlab-engine COMMAND [options]

commands:
  inspect DIR [--devices LIST] [--ulysses N] [--ring N] [--cfg-parallel]
              [--height N] [--width N] [--num-frames N]
      layout, files, architecture, parameters, dtypes and memory per device, as JSON
  make-tiny OUT [--layout official|sharded|diffusers|comfyui] [--seed N] [--dims tiny|1.3B|14B]
      write a deterministic random-weight Wan2.1 T2V model in a published layout
  bench-load DIR [--copy] [--touch]
      load time and resident memory of the whole model (mmap by default), as JSON
  bench dit|vae|t5 [--dims tiny|1.3B|14B] [--layers N] [--frames N --height N --width N]
                   [--tokens N] [--iters N] [--warmup N] [--threads N] [--seed N]
                   [--diffsynth DIR] [--python PATH] [--no-peer]
      forward time, GFLOP/s and peak memory on random weights, against PyTorch eager running
      DiffSynth-Studio's module on the same weights and input (bench/peer.py), as JSON.
      Defaults: dit 1.3B dims, 2 blocks, 5 frames of 480x832 (3120 tokens); vae real dims,
      decode of 5 frames of 128x128; t5 real dims, 2 layers, 512 tokens; warmup 1, iters 3.
      The peer runs with --python or $WANLAB_PYTHON (else python3) and --diffsynth or
      $DIFFSYNTH_DIR; without them "peer" is null and "peer_reason" says why.
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // "--flag" -> value ("" for switches)
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
    } else {
      if (i + 1 >= argc) wan::fail("option ", s, " needs a value");
      a.options[s] = argv[++i];
    }
  }
  return a;
}

int int_option(const Args& a, const std::string& name, int fallback) {
  auto it = a.options.find(name);
  if (it == a.options.end()) return fallback;
  try {
    size_t used = 0;
    int v = std::stoi(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    wan::fail("option ", name, " must be an integer, got '", it->second, "'");
  }
}

void check_known(const Args& a, const std::vector<std::string>& known) {
  for (const auto& [k, _] : a.options) {
    bool ok = false;
    for (const auto& n : known) ok = ok || n == k;
    if (!ok) wan::fail("unknown option ", k);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "inspect") {
      Args a = parse(argc, argv, {"--cfg-parallel", "--json"});
      check_known(a, {"--devices", "--ulysses", "--ring", "--cfg-parallel", "--height", "--width", "--num-frames", "--json"});
      if (a.positional.size() != 1) wan::fail("inspect needs exactly one model directory");
      wan::InspectOptions o;
      if (a.options.count("--devices")) o.devices = a.options["--devices"];
      o.ulysses = int_option(a, "--ulysses", 0);
      o.ring = int_option(a, "--ring", 0);
      o.cfg = a.options.count("--cfg-parallel") ? 2 : 1;
      o.height = int_option(a, "--height", o.height);
      o.width = int_option(a, "--width", o.width);
      o.num_frames = int_option(a, "--num-frames", o.num_frames);
      std::cout << wan::inspect_model(a.positional[0], o).dump(2) << "\n";
    } else if (cmd == "make-tiny") {
      Args a = parse(argc, argv, {});
      check_known(a, {"--layout", "--seed", "--dims"});
      if (a.positional.size() != 1) wan::fail("make-tiny needs exactly one output directory");
      wan::MakeModelOptions o;
      if (a.options.count("--layout")) o.layout = a.options["--layout"];
      if (a.options.count("--dims")) o.dims = a.options["--dims"];
      if (a.options.count("--seed")) {
        const std::string& s = a.options["--seed"];
        if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20)
          wan::fail("--seed must be an integer from 0 to 2^64-1, got '", s, "'");
        o.seed = std::stoull(s);
      }
      o.progress = [](const std::string& file, double f) {
        if (!file.empty()) std::fprintf(stderr, "[%3.0f%%] writing %s\n", f * 100, file.c_str());
      };
      wan::make_model(a.positional[0], o);
      std::cout << "{\"out\": \"" << a.positional[0] << "\"}\n";
    } else if (cmd == "bench-load") {
      Args a = parse(argc, argv, {"--copy", "--touch"});
      check_known(a, {"--copy", "--touch"});
      if (a.positional.size() != 1) wan::fail("bench-load needs exactly one model directory");
      std::cout << wan::bench_load(a.positional[0], !a.options.count("--copy"), a.options.count("--touch") > 0).dump(2)
                << "\n";
    } else if (cmd == "bench") {
      Args a = parse(argc, argv, {"--no-peer"});
      check_known(a, {"--dims", "--layers", "--frames", "--height", "--width", "--tokens", "--iters", "--warmup",
                      "--threads", "--seed", "--diffsynth", "--python", "--no-peer"});
      if (a.positional.size() != 1) wan::fail("bench needs one target: dit, vae or t5");
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
      else wan::fail("unknown bench target '", what, "' (allowed: dit, vae, t5)");
      std::cout << r.dump(2) << "\n";
    } else {
      std::cerr << "wanlab-engine: unknown command '" << cmd << "'\n" << kUsage;
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "wanlab-engine " << cmd << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

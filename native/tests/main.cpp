#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/make_model.h"
#include "common/error.h"
#include "common/fs.h"
#include "pipeline/request.h"
#include "pipeline/t2v.h"
#include "test.h"

namespace wantest {

std::array<std::string, 2> on_two_nodes(const std::function<void(int)>& fn) {
  std::array<std::string, 2> err;
  auto node = [&](int k) {
    try {
      fn(k);
    } catch (const std::exception& e) {
      err[size_t(k)] = e.what();
    } catch (const Failure& f) {
      err[size_t(k)] = f.what;
    }
  };
  std::thread t0(node, 0), t1(node, 1);
  t0.join(), t1.join();
  return err;
}
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
std::string scratch_dir() {
  // Leaked on purpose: it must outlive every test's use of it; main() removes the directory.
  static const std::string* dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("wanlab-tests-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    auto* s = new std::string(d.string());
    return s;
  }();
  return *dir;
}
std::string tiny_model(const std::string& layout, uint64_t seed) {
  std::string dir = scratch_dir() + "/tiny-" + layout + "-" + std::to_string(seed);
  if (!std::filesystem::exists(dir)) {
    wan::MakeModelOptions o;
    o.layout = layout;
    o.seed = seed;
    wan::make_model(dir, o);
  }
  return dir;
}
std::string source_dir() { return WANLAB_SOURCE_DIR; }

// The golden metadata spells DiffSynth's argument names (snake_case, as make_t2v.py passes them);
// the request codec (pipeline/request.h) reads the API's. The prompts' text is in the metadata
// for reading only: their token ids are the case's tensors.
wan::T2VRequest golden_request(const wan::TensorMap& g, const std::string& name, const std::string& metadata) {
  static const std::map<std::string, std::string> kApiKey = {
      {"seed", "seed"}, {"height", "height"}, {"width", "width"}, {"num_frames", "numFrames"},
      {"num_inference_steps", "numInferenceSteps"}, {"cfg_scale", "cfgScale"}, {"sigma_shift", "sigmaShift"},
      {"tiled", "tiled"}, {"tile_size", "tileSize"}, {"tile_stride", "tileStride"},
      {"tea_cache_l1_thresh", "teaCacheL1Thresh"}, {"tea_cache_model_id", "teaCacheModelId"},
      {"denoising_strength", "denoisingStrength"}};
  const nlohmann::json p = nlohmann::json::parse(metadata);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : p.items()) {
    if (key == "prompt" || key == "negative_prompt" || value.is_null()) continue;  // null: DiffSynth's default
    const auto it = kApiKey.find(key);
    if (it == kApiKey.end()) throw Failure{"golden case " + name + ": metadata key '" + key + "' is not a request field"};
    j[it->second] = value;
  }
  wan::T2VRequest r = wan::request_from_json(j, false);
  r.prompt_ids = g.at(name + ".prompt_ids").data, r.prompt_mask = g.at(name + ".prompt_mask").data;
  r.negative_ids = g.at(name + ".negative_ids").data, r.negative_mask = g.at(name + ".negative_mask").data;
  return r;
}

wan::T2VRequest tiny_request(int64_t height, int64_t width, int64_t frames, int64_t steps, double cfg_scale,
                             uint64_t seed) {
  wan::T2VRequest r;
  r.prompt_ids = at::remainder(at::arange(512, at::kLong) * 7 + 3, 380);
  r.prompt_mask = (at::arange(512, at::kLong) < 12).to(at::kLong);
  r.negative_ids = at::remainder(at::arange(512, at::kLong) * 5 + 1, 380);
  r.negative_mask = (at::arange(512, at::kLong) < 7).to(at::kLong);
  r.seed = seed;
  r.height = height, r.width = width, r.num_frames = frames;
  r.num_inference_steps = steps;
  r.cfg_scale = cfg_scale;
  return r;
}
std::string scratch(const std::string& name) { return scratch_dir() + "/" + name; }
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw Failure{"cannot write " + path};
}
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> needles, const char* file,
                  int line) {
  const std::string where = std::string(file) + ":" + std::to_string(line) + ": ";
  try {
    fn();
  } catch (const wan::Error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles)
      if (msg.find(n) == std::string::npos) throw Failure{where + "error \"" + msg + "\" does not mention \"" + n + "\""};
    return;
  }
  throw Failure{where + "did not throw"};
}
bool same(const wan::StoredTensor& a, const wan::StoredTensor& b) {
  if (a.dtype != b.dtype || a.data.scalar_type() != b.data.scalar_type() || a.data.sizes() != b.data.sizes())
    return false;
  if (a.data.numel() == 0) return true;
  at::Tensor x = a.data.contiguous(), y = b.data.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * x.element_size()) == 0;
}
double rel_l2(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  if (x.sizes() != y.sizes()) throw Failure{"rel_l2: shapes differ"};
  double den = y.norm().item<double>();
  return (x - y).norm().item<double>() / (den > 0 ? den : 1.0);
}
}  // namespace wantest

int main(int argc, char** argv) {
  std::string filter = argc > 1 ? argv[1] : "";
  int passed = 0, failed = 0;
  for (const auto& c : wantest::registry()) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    try {
      c.fn();
      ++passed;
      std::cout << "ok   " << c.name << "\n";
    } catch (const wantest::Failure& f) {
      ++failed;
      std::cout << "FAIL " << c.name << ": " << f.what << "\n";
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << c.name << ": unexpected exception: " << e.what() << "\n";
    }
  }
  wan::remove_tree(wantest::scratch_dir());
  std::cout << "wanlab-tests: " << passed << " passed, " << failed << " failed\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}

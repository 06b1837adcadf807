#include "golden.h"

#include <map>
#include <mutex>

#include "formats/safetensors.h"
#include "pipeline/t2v.h"

namespace wantest {

std::string golden_path(const std::string& name) { return source_dir() + "/test/golden/data/" + name + ".safetensors"; }

const wan::TensorMap& golden(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, wan::TensorMap> files;  // map nodes stay put: references stay valid
  std::lock_guard<std::mutex> lock(mu);
  auto it = files.find(name);
  if (it == files.end()) it = files.emplace(name, wan::load_safetensors(golden_path(name), false)).first;
  return it->second;
}

namespace {
const wan::StoredTensor& stored(const std::string& name, const std::string& tensor) {
  const wan::TensorMap& g = golden(name);
  auto it = g.find(tensor);
  if (it == g.end()) throw Failure{"golden tensor " + tensor + " missing from " + golden_path(name)};
  return it->second;
}
}  // namespace

const at::Tensor& golden_tensor(const std::string& name, const std::string& tensor) { return stored(name, tensor).data; }

at::Tensor golden_float(const std::string& name, const std::string& tensor) { return wan::to_float32(stored(name, tensor)); }

const wan::T2VEngine& tiny_engine() {
  static const wan::T2VEngine e(tiny_model());
  return e;
}

}  // namespace wantest

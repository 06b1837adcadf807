#include "parallel/devices.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <numeric>

#include "common/cuda.h"
#include "common/error.h"

namespace wan {

namespace {
int parse_index(const std::string& s, const std::string& text) {
  if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), ::isdigit))
    fail("invalid device index '", s, "' in devices '", text, "' (expected e.g. cpu, cpu:0-3, cuda:0,1)");
  return std::stoi(s);
}
}  // namespace

std::string resolve_devices(const std::string& text, std::string* why) {
  if (text.rfind("auto", 0) != 0) return text;
  int k = 0;  // "auto:K": GPU K (a process launched as LOCAL_RANK K)
  if (text != "auto") {
    if (text.size() < 6 || text[4] != ':')
      fail("invalid devices '", text, "' (expected auto, auto:K, cpu, cpu:0-3, cuda:0-7 or cuda:0,2)");
    k = parse_index(text.substr(5), text);
  }
  if (cuda_available()) {
    const int n = cuda_device_count();
    if (k >= n)
      fail("devices '", text, "': cuda:", k, " does not exist (", n, " CUDA device", n == 1 ? "" : "s",
           " visible); a process launched with LOCAL_RANK ", k, " needs GPU ", k);
    if (why) *why = concat(cuda_device_name(at::Device(at::kCUDA, c10::DeviceIndex(k))), " is visible");
    return concat("cuda:", k);
  }
  if (why) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    *why = !cuda_built() ? std::string("this wanlab build links a CPU-only libtorch")
                         : concat("this build has CUDA but no CUDA device is visible",
                                  visible ? concat(" (CUDA_VISIBLE_DEVICES='", visible, "')") : "");
  }
  return "cpu";
}

c10::Device aten_device(const DeviceSpec& d) {
  return d.type == "cuda" ? c10::Device(c10::kCUDA, c10::DeviceIndex(d.index)) : c10::Device(c10::kCPU);
}

std::vector<DeviceSpec> parse_devices(const std::string& text) {
  if (text.rfind("auto", 0) == 0) return parse_devices(resolve_devices(text));
  std::string type = text, rest;
  size_t colon = text.find(':');
  if (colon != std::string::npos) type = text.substr(0, colon), rest = text.substr(colon + 1);
  if (type != "cpu" && type != "cuda")
    fail("invalid devices '", text, "': the device type must be cpu or cuda (e.g. cpu:0-3, cuda:0-7), or the list 'auto'");
  std::vector<DeviceSpec> out;
  if (rest.empty()) {
    if (colon != std::string::npos) fail("invalid devices '", text, "': nothing after ':'");
    return {{type, 0}};
  }
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t comma = rest.find(',', pos);
    std::string item = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = item.find('-');
    int lo = parse_index(item.substr(0, dash), text);
    int hi = dash == std::string::npos ? lo : parse_index(item.substr(dash + 1), text);
    if (hi < lo) fail("invalid device range '", item, "' in devices '", text, "'");
    for (int i = lo; i <= hi; ++i) {
      for (const auto& d : out)
        if (d.index == i) fail("device ", type, ":", i, " is listed twice in '", text, "'");
      out.push_back({type, i});
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (out.size() > 1024) fail("too many devices in '", text, "'");
  return out;
}

ParallelLayout make_layout(int devices, int ulysses, int ring, int cfg, int heads) {
  if (devices < 1) fail("devices must be at least 1, got ", devices);
  if (cfg != 1 && cfg != 2) fail("cfg parallel degree must be 1 or 2, got ", cfg);
  if (ulysses < 0 || ring < 0) fail("ulysses and ring degrees must be positive");
  if (devices % cfg != 0) fail("cfg parallel degree ", cfg, " does not divide the ", devices, " devices");
  const int per_branch = devices / cfg;
  if (ulysses == 0 && ring == 0) {
    ulysses = std::gcd(per_branch, heads);
    ring = per_branch / ulysses;
  } else if (ulysses == 0) {
    ulysses = per_branch % ring == 0 ? per_branch / ring : 0;
  } else if (ring == 0) {
    ring = per_branch % ulysses == 0 ? per_branch / ulysses : 0;
  }
  if (ulysses < 1 || ring < 1 || ulysses * ring * cfg != devices)
    fail("ulysses (", ulysses, ") x ring (", ring, ") x cfg (", cfg, ") must equal the number of devices (", devices,
         ")");
  if (heads % ulysses != 0) fail("ulysses degree ", ulysses, " does not divide the DiT's ", heads, " heads");
  return {devices, ulysses, ring, cfg};
}

}  // namespace wan

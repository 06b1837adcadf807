#include "parallel/devices.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <numeric>

#include "common/cuda.h"
#include "common/error.h"
#include "parallel/process_group.h"

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
  const size_t x = rest.find('x');
  if (x != std::string::npos) {  // "cuda:KxN": N ranks on GPU K (the whole list)
    if (type == "cpu")
      fail("invalid devices '", text, "': KxN shares one GPU between N ranks (cuda:0x4); CPU ranks are numbered instead "
           "(cpu:0-3 for 4 ranks)");
    const int k = parse_index(rest.substr(0, x), text), n = parse_index(rest.substr(x + 1), text);
    if (n < 2 || n > 16)
      fail("invalid devices '", text, "': cuda:", k, "xN shares GPU ", k, " between N = 2 to 16 ranks, got ", n);
    return std::vector<DeviceSpec>(size_t(n), DeviceSpec{type, k});
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
        if (d.index == i) {
          if (type == "cpu") fail("device ", type, ":", i, " is listed twice in '", text, "'");
          fail("device cuda:", i, " is listed twice in '", text, "': NCCL refuses two ranks on one GPU; to test N ranks "
               "on GPU ", i, " write the whole list as cuda:", i, "xN (e.g. cuda:", i, "x4), which runs them on the "
               "Gloo transport");
        }
      out.push_back({type, i});
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (out.size() > 1024) fail("too many devices in '", text, "'");
  return out;
}

bool shares_device(const std::vector<DeviceSpec>& devices) {
  for (size_t i = 1; i < devices.size(); ++i)
    if (devices[i].type == "cuda" && devices[i].type == devices[0].type && devices[i].index == devices[0].index)
      return true;
  return false;
}

std::string format_devices(const std::vector<DeviceSpec>& d) {
  if (d.empty()) return "";
  if (shares_device(d)) return concat(d[0].type, ":", d[0].index, "x", d.size());
  std::string s = d[0].type + ":";
  for (size_t i = 0; i < d.size(); ++i) s += concat(i ? "," : "", d[i].index);
  return s;
}

const char* transport_name(Transport t) {
  return t == Transport::Gloo ? "gloo" : t == Transport::Nccl ? "nccl" : "default";
}

Transport choose_transport(const std::string& asked, const std::vector<DeviceSpec>& devices, const std::string& text) {
  if (!asked.empty() && asked != "gloo" && asked != "nccl")
    fail_param("transport", "transport must be gloo or nccl, got '", asked, "'");
  const bool cuda = !devices.empty() && devices[0].type == "cuda", shared = shares_device(devices);
  if (asked == "nccl") {
    if (!nccl_built())
      fail_param("transport", "transport nccl: this wanlab build has no NCCL (",
                 cuda_built() ? "its CUDA libtorch was built without c10d's NCCL, USE_C10D_NCCL"
                              : "it links a CPU-only libtorch",
                 "); leave transport out or give gloo");
    if (!cuda)
      fail_param("transport", "transport nccl moves tensors between GPUs, but devices '", text,
                 "' are CPU ranks, whose collectives run on Gloo; leave transport out or give gloo");
    if (shared)
      fail_param("transport", "transport nccl cannot run devices '", text, "': NCCL refuses two ranks on one GPU ",
                 "(\"Duplicate GPU detected\"), so ranks sharing a GPU use gloo");
    return Transport::Nccl;
  }
  if (asked == "gloo") return Transport::Gloo;
  return cuda && nccl_built() && !shared ? Transport::Nccl : Transport::Gloo;
}

GroupDevices check_group_devices(const std::string& devices, const std::string& transport) {
  GroupDevices g;
  try {
    g.list = resolve_devices(devices, &g.why);  // "auto" resolved once
    g.devices = parse_devices(g.list);
  } catch (const ParamError&) {
    throw;
  } catch (const Error& e) {
    const std::string m = e.what();
    throw ParamError("devices", m.find("devices") != std::string::npos ? m : "devices: " + m);
  }
  bool any_cuda = false, any_cpu = false;
  for (const auto& d : g.devices) {
    (d.type == "cuda" ? any_cuda : any_cpu) = true;
    if (d.type != "cuda") continue;
    const int n = cuda_device_count();
    if (n == 0)
      fail_param("devices", "devices '", devices, "': no CUDA device is visible",
                 cuda_built() ? "" : " (this wanlab build has no CUDA: it links a CPU-only libtorch)");
    if (d.index >= n)
      fail_param("devices", "devices '", devices, "': cuda:", d.index, " does not exist (", n, " CUDA device",
                 n == 1 ? "" : "s", " visible)");
  }
  if (any_cuda && any_cpu) fail_param("devices", "devices '", devices, "' mix CPU and CUDA ranks; use one kind");
  g.shared = shares_device(g.devices);
  g.transport = choose_transport(transport, g.devices, devices);
  return g;
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

// Device lists as users write them: "cpu", "cpu:0-3", "cuda:0", "cuda:0-7", "cuda:0,2,5", and
// "auto": the first CUDA device when this build has CUDA and one is visible, else the CPU;
// "auto:K" likewise with GPU K (one process per GPU, K its LOCAL_RANK): an error when CUDA devices
// are visible but not K. "cuda:KxN" (N in 2..16) is N ranks sharing GPU K, a test and debugging
// mode: NCCL refuses two ranks on one GPU, so such a group runs on the Gloo transport.
#pragma once
#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace wan {

struct DeviceSpec {
  std::string type;  // "cpu" or "cuda"
  int index = 0;
};

// Parses a device list; errors name the text and the allowed forms. A GPU named twice is refused
// unless the list is "cuda:KxN"; "cpu:KxN" is refused (CPU ranks are numbered: cpu:0-3).
std::vector<DeviceSpec> parse_devices(const std::string& text);
// True when several ranks of the list are on one GPU (only "cuda:KxN" parses so).
bool shares_device(const std::vector<DeviceSpec>& devices);
// The list as parse_devices reads it back: "cuda:0x4" for a shared GPU, else "cuda:0,1,2".
std::string format_devices(const std::vector<DeviceSpec>& devices);

// How ranks exchange tensors (c10d backends). Gloo moves host memory: a rank on a GPU stages every
// transfer through pinned host buffers. NCCL moves GPU memory directly (CUDA ranks, a libtorch
// with c10d's NCCL). Default: NCCL for CUDA ranks where the build has it, else Gloo.
enum class Transport { Default, Gloo, Nccl };
const char* transport_name(Transport t);  // "default", "gloo", "nccl"

// The transport a group of `devices` (the list `text`) uses, given what was asked ("", "gloo" or
// "nccl"): NCCL for CUDA ranks when this build has NCCL, Gloo otherwise and always for a shared
// GPU. A ParamError on "transport" names why NCCL cannot run (CPU ranks, a build without NCCL, a
// shared GPU) or the value that is neither.
Transport choose_transport(const std::string& asked, const std::vector<DeviceSpec>& devices, const std::string& text);

// The device list and transport an engine opens with, checked before anything loads: "auto"
// resolved (why: the reason, for "auto"), the list parsed, its GPUs present in this build and
// machine, one kind of rank, the transport chosen. Errors are ParamErrors on "devices" or
// "transport".
struct GroupDevices {
  std::string list, why;
  std::vector<DeviceSpec> devices;
  Transport transport = Transport::Gloo;
  bool shared = false;  // several ranks on one GPU
};
GroupDevices check_group_devices(const std::string& devices, const std::string& transport);
// The ATen device a spec names (a CPU rank's index numbers the rank, not a device: the CPU).
c10::Device aten_device(const DeviceSpec& d);

// The device list `text` stands for: itself, or for "auto" "cuda:0" or "cpu" and (when `why` is
// given) why: the GPU's name, or the fallback's reason (no CUDA in this build, or none visible, with
// CUDA_VISIBLE_DEVICES quoted). parse_devices resolves through it.
std::string resolve_devices(const std::string& text, std::string* why = nullptr);

// The sequence-parallel layout of a device group: ulysses x ring ranks per CFG branch, and a
// CFG factor of 2 when the conditional and unconditional passes run on two halves.
struct ParallelLayout {
  int devices = 1, ulysses = 1, ring = 1, cfg = 1;
  int sequence_parallel() const { return ulysses * ring; }
};

// Fills in missing degrees (0 = choose) and checks that ulysses x ring x cfg equals the device
// count and that Ulysses divides the attention heads. When both are chosen, Ulysses takes the
// largest degree dividing both the ranks per branch and the heads (all-to-all is cheaper than
// ring passes), ring the rest.
ParallelLayout make_layout(int devices, int ulysses, int ring, int cfg, int heads);

}  // namespace wan

// Device lists as users write them: "cpu", "cpu:0-3", "cuda:0", "cuda:0-7", "cuda:0,2,5", and
// "auto": the first CUDA device when this build has CUDA and one is visible, else the CPU;
// "auto:K" likewise with GPU K (one process per GPU, K its LOCAL_RANK): an error when CUDA devices
// are visible but not K.
#pragma once
#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace wan {

struct DeviceSpec {
  std::string type;  // "cpu" or "cuda"
  int index = 0;
};

// Parses a device list; errors name the text and the allowed forms.
std::vector<DeviceSpec> parse_devices(const std::string& text);
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

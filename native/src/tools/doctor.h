// `wanlab doctor` / `wanlab-engine doctor`: what this build and this machine can run, found out by
// running it. The libtorch the engine links (version, CUDA, the c10d backends compiled in, its
// build configuration), what `--devices auto` picks and why, and for each visible CUDA device its
// name, compute capability and memory plus a small run of every path the DiT takes there against
// float32 on the same device: a bf16 matmul, SDPA, the ring's attention part with its log-sum-exp,
// and both own kernels (compiled with NVRTC and checked bit for bit against their host emulation).
//
// `problems` are what stops a run or makes it wrong (a check failing, a CUDA build that sees no
// GPU); `warnings` what makes it slower (own kernels unavailable, no NCCL for device groups);
// `message` says where runs go and, when they fall back to the CPU, how to get the GPU build.
#pragma once
#include <c10/core/Device.h>

#include <string>

#include <nlohmann/json.hpp>

namespace wan {

nlohmann::json doctor_report();

// The DiT's paths on device `d` at small sizes (well under a second once compiled): name -> {ok,
// rel_l2 | error | unavailable, ...}. doctor_report runs it on each CUDA device; on the CPU the
// own kernels are unavailable and the rest runs as it would there.
nlohmann::json device_checks(const at::Device& d);

// "2.11.0": the libtorch this engine was compiled against.
std::string libtorch_version();

}  // namespace wan

// Where a model lives and in which dtype it computes. CPU models compute in float32 (the golden
// tests compare them with DiffSynth bit for bit); CUDA models keep their weights resident in
// bfloat16 and compute in it, with float32 where DiffSynth keeps it (norm statistics, RoPE, the
// modulation, the residual stream, the sampler's latents).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "common/dtype.h"

namespace wan {

struct Placement {
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;  // float32 | bfloat16 | float16
};

// "cpu", "cuda", "cuda:1" -> a device; errors name the text and the allowed forms.
at::Device parse_device(const std::string& text);
// "f32" | "bf16" | "f16" (also "float32", "bfloat16", "float16") -> a dtype.
at::ScalarType parse_compute_dtype(const std::string& text);
// The compute dtype a device gets unless told otherwise: float32 on the CPU, bfloat16 on CUDA.
at::ScalarType default_compute_dtype(const at::Device& d);
// "cuda:0 bf16"
std::string placement_name(const Placement& p);

// A checkpoint tensor as `p` holds it: moved to the device in its stored dtype first (so a bf16
// checkpoint crosses PCIe at 2 bytes per value), then converted there; float8 is widened on the
// CPU. Contiguous.
at::Tensor place(const StoredTensor& t, const Placement& p);

}  // namespace wan

#include "models/placement.h"

#include "common/error.h"
#include "common/strings.h"

namespace wan {

at::Device parse_device(const std::string& text) {
  if (text == "cpu") return at::Device(at::kCPU);
  if (text == "cuda") return at::Device(at::kCUDA, 0);
  if (starts_with(text, "cuda:")) {
    const std::string idx = text.substr(5);
    if (!idx.empty() && idx.size() <= 3 && idx.find_first_not_of("0123456789") == std::string::npos)
      return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(idx)));
  }
  fail("device '", text, "' is not one of: cpu, cuda, cuda:N");
}

at::ScalarType parse_compute_dtype(const std::string& text) {
  if (text == "f32" || text == "float32") return at::kFloat;
  if (text == "bf16" || text == "bfloat16") return at::kBFloat16;
  if (text == "f16" || text == "float16") return at::kHalf;
  fail("compute dtype '", text, "' is not one of: f32, bf16, f16");
}

at::ScalarType default_compute_dtype(const at::Device& d) { return d.is_cuda() ? at::kBFloat16 : at::kFloat; }

std::string placement_name(const Placement& p) {
  const char* dt = p.dtype == at::kFloat ? "f32" : p.dtype == at::kBFloat16 ? "bf16" : p.dtype == at::kHalf ? "f16" : "?";
  return concat(p.device.str(), " ", dt);
}

at::Tensor place(const StoredTensor& t, const Placement& p) {
  if (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2) return to_float32(t).to(p.device, p.dtype).contiguous();
  if (!t.data.is_floating_point()) fail("place: tensor of integer dtype ", t.data.scalar_type(), " is not a weight");
  return t.data.to(p.device).to(p.dtype).contiguous();
}

}  // namespace wan

#include "pipeline/fork.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"

namespace wan {

namespace {
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};

std::string sizes_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
}  // namespace

std::string dit_fingerprint(const LoadedModel& m) {
  Fnv f;
  std::vector<std::string> names;
  for (const auto& [name, _] : m.dit) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const at::Tensor& t = m.dit.at(name).data;
    f.add(name);
    f.add(std::string(dtype_name(m.dit.at(name).dtype)));
    for (int64_t d : t.sizes()) f.add(&d, sizeof d);
  }
  for (const char* name : {"patch_embedding.weight", "blocks.0.self_attn.q.weight", "head.head.weight"}) {
    auto it = m.dit.find(name);
    if (it == m.dit.end()) continue;
    const at::Tensor t = it->second.data.contiguous();
    f.add(t.data_ptr(), std::min<size_t>(t.nbytes(), size_t(1) << 20));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return std::string("fnv1a64:") + hex;
}

nlohmann::json fork_state(const T2VRequest& r, const FlowMatchSchedule& sched, int64_t step,
                          const std::vector<int64_t>& shape, const std::string& model) {
  nlohmann::json req = request_to_json(r);
  for (const char* k : {"promptIds", "promptMask", "negativeIds", "negativeMask", "stopAtStep", "resumeFromStep",
                        "resumeModel", "resumeSigmas"})
    req.erase(k);
  const at::Tensor s = sched.sigmas.to(at::kDouble).contiguous();
  return {{"step", step},
          {"steps", sched.steps()},
          {"sigmas", std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel())},
          {"model", model},
          {"seed", std::to_string(r.seed)},
          {"shape", shape},
          {"request", req}};
}

void check_fork(const T2VRequest& r, const FlowMatchSchedule& sched, const std::vector<int64_t>& shape,
                const std::string& model) {
  const int64_t steps = sched.steps();
  const bool resume = r.resume_from_step >= 0;
  const int64_t first = resume ? r.resume_from_step : 0;
  if (r.stop_at_step != 0 && !(r.stop_at_step > first && r.stop_at_step < steps))
    fail_param("stop_at_step", "stop_at_step must be between ", first + 1, " and ", steps - 1, " (a step after the ",
               resume ? "resumed one" : "start", " and before the last of the ", steps, " steps), got ", r.stop_at_step);
  if (!resume) {
    if (r.resume_latents.defined()) fail_param("resume", "resume latents are given without the step to resume from");
    return;
  }
  if (r.resume_from_step >= steps)
    fail_param("resume", "resume from step ", r.resume_from_step, " is beyond the schedule's ", steps, " steps");
  if (!r.resume_model.empty() && r.resume_model != model)
    fail_param("resume", "resume latents come from another model (", r.resume_model, "), this engine's is ", model);
  if (!r.resume_sigmas.empty()) {
    const at::Tensor s = sched.sigmas.contiguous();
    if (int64_t(r.resume_sigmas.size()) != steps)
      fail_param("resume", "resume latents come from a schedule of ", r.resume_sigmas.size(), " steps, this request's has ",
                 steps, " (the schedule must be the same)");
    for (int64_t i = 0; i < steps; ++i)
      if (static_cast<float>(r.resume_sigmas[size_t(i)]) != s.data_ptr<float>()[i])
        fail_param("resume", "resume latents come from another schedule: sigma ", i, " was ", r.resume_sigmas[size_t(i)],
                   ", this request's is ", s.data_ptr<float>()[i], " (give the same steps, timesteps, sigma shift and "
                   "denoising strength)");
  }
  if (!r.resume_latents.defined()) fail_param("resume", "resume needs the latents to resume from");
  const at::Tensor& l = r.resume_latents;
  if (l.sizes().vec() != shape)
    fail_param("resume", "resume latents have shape ", sizes_text(l.sizes().vec()), ", this request's video needs ",
               sizes_text(shape), " (z, frames, height/8, width/8)");
  if (l.scalar_type() != at::kFloat) fail_param("resume", "resume latents must be float32, got ", l.scalar_type());
  if (!at::isfinite(l).all().item<bool>()) fail_param("resume", "resume latents hold values that are not finite");
}

}  // namespace wan

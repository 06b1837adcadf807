#include "tools/bench_lora.h"

#include <chrono>

#include "checkpoint/lora.h"
#include "common/error.h"
#include "formats/safetensors.h"
#include "pipeline/t2v.h"
#include "tools/median.h"

namespace wan {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The other way to apply a LoRA, timed instead of built: its terms beside the base weights
// (y = x Wᵀ + s · (x Aᵀ) Bᵀ, DiffSynth's hot-loaded path) cost two thin matmuls per linear and
// step. Seconds per DiT pass of those extra matmuls: one block's ten linears on `tokens` video
// tokens (the cross-attention's k and v on `text` tokens), median of 5, times the blocks.
double lowrank_pass_s(const DitArch& a, int64_t rank, int64_t tokens, int64_t text) {
  const int64_t D = a.dim, F = a.ffn_dim;
  struct Lin {
    int64_t out, in, rows;
  };
  const Lin lins[] = {{D, D, tokens}, {D, D, tokens}, {D, D, tokens}, {D, D, tokens}, {D, D, tokens},
                      {D, D, text},   {D, D, text},   {D, D, tokens}, {F, D, tokens}, {D, F, tokens}};
  std::vector<double> runs;
  for (int rep = 0; rep < 6; ++rep) {
    double t = 0;
    for (const Lin& l : lins) {
      const at::Tensor x = at::randn({1, l.rows, l.in}), A = at::randn({rank, l.in}), B = at::randn({l.out, rank});
      const auto t0 = std::chrono::steady_clock::now();
      const at::Tensor y = at::linear(at::linear(x, A), B).mul_(0.5);  // [1, rows, out]: the extra term
      t += since(t0);
      (void)y;
    }
    if (rep > 0) runs.push_back(t);  // the first warms up
  }
  return median_of(runs) * double(a.num_layers);
}
}  // namespace

nlohmann::json bench_lora(const std::string& dir, const BenchLoraOptions& o) {
  if (o.rank < 1 || o.steps < 1) fail("bench-lora: --rank and --steps must be at least 1");
  ParallelOptions p;
  p.devices = o.devices;
  auto t0 = std::chrono::steady_clock::now();
  T2VEngine engine(dir, p);
  const double reload_s = since(t0);
  const DitArch& a = engine.model().arch.dit;

  // A random rank-`rank` LoRA on every block linear (PEFT naming), ~1 % of each weight's scale.
  TensorMap lora;
  at::manual_seed(0);
  int64_t weights = 0;
  for (const TensorSpec& s : dit_specs(a)) {
    if (!is_block_linear_weight(s.name, int64_t(s.shape.size()))) continue;
    const std::string m = s.name.substr(0, s.name.size() - 7);
    lora[m + ".lora_B.weight"] = stored(at::randn({s.shape[0], o.rank}) * 0.01);
    lora[m + ".lora_A.weight"] = stored(at::randn({o.rank, s.shape[1]}) * 0.01);
    ++weights;
  }
  const std::string path = dir + "/.bench-lora.safetensors";
  save_safetensors(path, lora);
  nlohmann::json out;
  try {
    T2VRequest r;
    const int64_t L = a.text_len;
    r.prompt_ids = at::remainder(at::arange(L, at::kLong) * 7 + 3, 300);
    r.prompt_mask = (at::arange(L, at::kLong) < 12).to(at::kLong);
    r.height = o.height, r.width = o.width, r.num_frames = o.frames, r.num_inference_steps = o.steps, r.cfg_scale = 1.0;
    auto step_median = [&](const T2VRequest& q) { return median_of(engine.generate(q).timings["step_s"].get<std::vector<double>>()); };
    step_median(r);  // warm-up (prompt cache, allocator)
    const double step_base = step_median(r);

    t0 = std::chrono::steady_clock::now();
    const std::shared_ptr<const LoraFile> parsed = load_lora(path, a);
    const double parse_s = since(t0);
    T2VRequest with = r;
    with.loras = {{path, 1.0, true}};
    auto timed_switch = [&](const T2VRequest& q) {
      const auto s0 = std::chrono::steady_clock::now();
      engine.use_loras(q);
      return since(s0);
    };
    const double switch_s = timed_switch(with);
    const double cached_s = timed_switch(with);  // the same set again: nothing to do
    const int64_t working = engine.loras()["working_bytes"].get<int64_t>();
    const double step_lora = step_median(with);
    T2VRequest half = with;
    half.loras[0].scale = 0.5;
    const double rescale_s = timed_switch(half);
    const double restore_s = timed_switch(r);
    const int64_t tokens = ((o.frames - 1) / 4 + 1) * (o.height / 16) * (o.width / 16);
    const double lowrank_s = lowrank_pass_s(a, o.rank, tokens, a.text_len);
    out = {{"model", dir}, {"devices", o.devices}, {"rank", o.rank}, {"lora_file_bytes", parsed->bytes},
           {"lora_weights", weights}, {"working_bytes", working}, {"reload_s", reload_s}, {"parse_s", parse_s},
           {"switch_s", switch_s}, {"rescale_s", rescale_s}, {"restore_s", restore_s}, {"cached_s", cached_s},
           {"steps", o.steps}, {"video", {o.height, o.width, o.frames}}, {"step_s_base", step_base},
           {"step_s_lora", step_lora}, {"step_overhead", step_lora / step_base - 1},
           {"lowrank_step_s_extra", lowrank_s}, {"lowrank_step_overhead", lowrank_s / step_base}};
  } catch (...) {
    std::remove(path.c_str());
    throw;
  }
  std::remove(path.c_str());
  return out;
}

}  // namespace wan

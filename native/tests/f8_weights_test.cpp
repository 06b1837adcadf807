// A float8 checkpoint's DiT block linears stay float8 on the device (1 B per weight) and are
// decoded to the compute dtype at each use. Every e4m3 value is exact in bf16 and float32, so the
// engine must give the latents of the same checkpoint widened at load, bit for bit: on one rank,
// in bf16, and with the weights sharded over a group (the float8 bytes travel as their own flat
// buffer). The memory model counts those weights at 1 B.
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "checkpoint/inspect.h"
#include "checkpoint/safetensors.h"
#include "models/dit.h"
#include "models/memory_model.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {

// The tiny model with every block linear weight replaced by random e4m3 bytes of magnitude
// 2^-6 .. 0.94 (sign, exponent 1..6, any mantissa), or those values widened to float32.
LoadedModel f8_model(bool widen) {
  LoadedModel m = load_model(wantest::tiny_model(), true);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const std::regex linear(R"(^blocks\.\d+\.(self_attn|cross_attn)\.[qkvo]\.weight$|^blocks\.\d+\.ffn\.[02]\.weight$)");
  for (auto& [name, t] : m.dit) {
    if (!std::regex_match(name, linear)) continue;
    const auto shape = t.data.sizes();
    const at::Tensor sign = at::randint(0, 2, shape, g, at::kInt), exp = at::randint(1, 7, shape, g, at::kInt),
                     man = at::randint(0, 8, shape, g, at::kInt);
    t = {(sign * 128 + exp * 8 + man).to(at::kByte), DType::F8_E4M3};
    if (widen) t = stored(to_float32(t));
  }
  return m;
}

}  // namespace

TEST(f8_block_linears_stay_f8_and_give_the_widened_latents) {
  EXPECT(dit_keeps_f8(f8_model(false).dit) && !dit_keeps_f8(f8_model(true).dit));
  EXPECT(!dit_keeps_f8(load_model(wantest::tiny_model(), true).dit));
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0, 11);
  for (const char* dtype : {"f32", "bf16"}) {
    ComputeOptions c;
    c.dtype = dtype;
    T2VEngine f8(f8_model(false), {}, c), wide(f8_model(true), {}, c);
    const DitArch& a = f8.model().arch.dit;
    const int64_t linear_w = a.num_layers * (8 * a.dim * a.dim + 2 * a.dim * a.ffn_dim);
    EXPECT(f8.placement()["dit_f8_params"] == linear_w && wide.placement()["dit_f8_params"] == 0);
    EXPECT(f8.placement()["dit_resident_params"] == wide.placement()["dit_resident_params"]);
    const at::Tensor a8 = f8.generate(r).latents, aw = wide.generate(r).latents;
    std::printf("     %s: float8 block linears (%lld weights) vs widened: latents %s\n", dtype, (long long)linear_w,
                at::equal(a8, aw) ? "bitwise equal" : "DIFFER");
    EXPECT(at::equal(a8, aw));
    // The memory model: those weights at 1 B instead of the compute dtype's bytes.
    const int64_t B = std::string(dtype) == "f32" ? 4 : 2;
    const MemoryPlan p8 = f8.memory_plan(r), pw = wide.memory_plan(r);
    EXPECT(pw.dit_resident - p8.dit_resident == linear_w * (B - 1));
  }
}

TEST(f8_block_linears_shard_as_their_own_flat_buffer) {
  ParallelOptions p;
  p.devices = "cpu:0-1", p.ulysses = 2, p.timeout_s = 60;
  ComputeOptions sharded;
  sharded.shard_weights = true;
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0, 11);
  T2VEngine full(f8_model(false), p), part(f8_model(false), p, sharded);
  EXPECT(part.placement()["dit_weight_shards"] == 2);
  EXPECT(at::equal(full.generate(r).latents, part.generate(r).latents));
}

TEST(memory_model_counts_f8_block_linears_at_one_byte) {
  const ModelArch a = preset_arch("14B");
  const int64_t D = a.dit.dim, F = a.dit.ffn_dim, per_block_linear = 8 * D * D + 2 * D * F;
  MemoryPlanOptions o;  // one GPU, bf16, every block resident
  o.gpu = true;
  const MemoryPlan bf16 = plan_memory(a, o);
  o.dit_f8 = true;
  const MemoryPlan f8 = plan_memory(a, o);
  EXPECT(bf16.dit_resident - f8.dit_resident == a.dit.num_layers * per_block_linear);
  EXPECT(f8.dit_activations - bf16.dit_activations == D * F * 2);  // one linear decoded for its use
  // 14B: 13.6 billion linear weights, 27.3 GB of 28.6 GB in bf16 -> 14.9 GB with float8 linears.
  std::printf("     14B DiT resident: bf16 %.2f GB, float8 block linears %.2f GB\n", bf16.dit_resident / 1e9,
              f8.dit_resident / 1e9);
  EXPECT(f8.dit_resident < bf16.dit_resident * 55 / 100);
  // Streamed and pinned blocks move float8 bytes too.
  o.persistent_params = 4000000000LL;
  const MemoryPlan streamed = plan_memory(a, o);
  o.dit_f8 = false;
  const MemoryPlan streamed_bf16 = plan_memory(a, o);
  EXPECT(streamed.dit_streamed < streamed_bf16.dit_streamed && streamed.host_pinned < streamed_bf16.host_pinned);
}

TEST(f8_checkpoint_from_disk_loads_f8_and_inspect_counts_it) {
  // The official layout with its DiT file rewritten in float8: the loader maps it, the engine keeps
  // the block linears float8, inspect names them and counts them at 1 B.
  namespace fs = std::filesystem;
  const std::string dir = wantest::scratch_dir() + "/tiny-official-f8";
  if (!fs::exists(dir)) {
    fs::copy(wantest::tiny_model(), dir, fs::copy_options::recursive);
    save_safetensors(dir + "/diffusion_pytorch_model.safetensors", f8_model(false).dit);
  }
  const T2VEngine e(dir);
  const int64_t f8 = e.placement()["dit_f8_params"];
  EXPECT(f8 > 0);
  InspectOptions o;
  o.devices = "cuda:0";  // inspect needs no GPU
  const nlohmann::json m = inspect_model(dir, o)["memory"], plain = inspect_model(wantest::tiny_model(), o)["memory"];
  EXPECT(m["weight_dtype"] == "BF16 + F8 block linears" && plain["weight_dtype"] == "BF16");
  EXPECT(plain["dit_weights_bytes"].get<int64_t>() - m["dit_weights_bytes"].get<int64_t>() == f8);
  EXPECT(at::equal(e.generate(wantest::tiny_request(32, 32, 1, 1, 1.0, 3)).latents,
                   T2VEngine(f8_model(false), {}).generate(wantest::tiny_request(32, 32, 1, 1, 1.0, 3)).latents));
}

TEST(memory_model_plans_the_budgets_gpu_check_runs) {
  // What the next GPU run's budget steps should see (native/tools/gpu-check.sh): the text encoder
  // on the CPU, a tiled decode, 480p, bf16; the choice is the largest whole-block count that fits.
  struct Case {
    const char* dims;
    double budget;
  } cases[] = {{"1.3B", 3e9}, {"14B", 24e9}};
  for (const Case& c : cases) {
    const ModelArch a = preset_arch(c.dims);
    MemoryPlanOptions o;
    o.gpu = true, o.t5_on_device = false, o.tiled = true;
    const int64_t budget = int64_t(c.budget);
    const int64_t pp = persistent_params_for_budget(a, o, budget);
    EXPECT(pp > 0);
    o.persistent_params = pp;
    const MemoryPlan p = plan_memory(a, o);
    const int64_t per_block = 2 * (4 * (a.dit.dim * a.dit.dim + a.dit.dim) + 2 * a.dit.dim) + 2 * a.dit.dim +
                              2 * a.dit.dim * a.dit.ffn_dim + a.dit.ffn_dim + 7 * a.dit.dim;
    const int64_t streamed_blocks = p.host_pinned / (per_block * 2);
    std::printf("     %s, --budget %.0fG: persistent_params %lld, %lld of %lld blocks streamed, peak %.2f GB "
                "(encode %.2f, denoise %.2f, decode %.2f), host %.2f GB\n",
                c.dims, c.budget / 1e9, (long long)pp, (long long)streamed_blocks, (long long)a.dit.num_layers,
                p.peak() / 1e9, p.encode() / 1e9, p.denoise() / 1e9, p.decode() / 1e9, p.host() / 1e9);
    EXPECT(p.peak() <= budget && streamed_blocks > 0 && streamed_blocks < a.dit.num_layers);
    o.persistent_params += per_block;  // one more block would not fit
    EXPECT(plan_memory(a, o).peak() > budget);
  }
}

TEST(memory_model_longest_video_within_a_budget) {
  // 14B on a 24 GB card's share, the text encoder on the CPU: how long a video fits.
  const ModelArch a = preset_arch("14B");
  MemoryPlanOptions o;
  o.gpu = true, o.t5_on_device = false;
  for (const auto& [h, w] : {std::pair{480, 832}, std::pair{720, 1280}}) {
    o.height = h, o.width = w;
    o.tiled = false;
    const LongestVideo plain = longest_video(a, o, int64_t(24e9));
    o.tiled = true;
    const LongestVideo tiled = longest_video(a, o, int64_t(24e9));
    o.dit_f8 = true;
    const LongestVideo f8 = longest_video(a, o, int64_t(24e9));
    o.dit_f8 = false;
    std::printf("     14B in 24 GB, %dx%d: untiled %d frames resident / %d streaming; tiled %d / %d; "
                "tiled with float8 linears %d / %d\n",
                h, w, plain.resident, plain.streamed, tiled.resident, tiled.streamed, f8.resident, f8.streamed);
    EXPECT(plain.streamed >= plain.resident && tiled.streamed >= plain.streamed && f8.resident >= tiled.resident);
    // The answer is the boundary: it fits, four more frames do not.
    o.tiled = true, o.num_frames = tiled.streamed;
    EXPECT(tiled.streamed == 0 || persistent_params_for_budget(a, o, int64_t(24e9)) != -2);
    o.num_frames = tiled.streamed + 4;
    EXPECT(tiled.streamed == 1001 || persistent_params_for_budget(a, o, int64_t(24e9)) == -2);
  }
  // No GPU to stream to: streaming adds nothing.
  o.gpu = false, o.bytes_per_value = 4;
  const LongestVideo cpu = longest_video(a, o, int64_t(200e9));
  EXPECT(cpu.streamed == cpu.resident);
}

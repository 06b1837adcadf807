// A float8 checkpoint's DiT block linears stay float8 on the device (1 B per weight) and are
// decoded to the compute dtype at each use. Every e4m3 value is exact in bf16 and float32, so the
// engine must give the latents of the same checkpoint widened at load, bit for bit: on one rank,
// in bf16, and with the weights sharded over a group (the float8 bytes travel as their own flat
// buffer). The memory model counts those weights at 1 B.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/version.h>

#include <cmath>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "tools/inspect.h"
#include "formats/safetensors.h"
#include "common/cuda.h"
#include "models/dit.h"
#include "models/memory_model.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {

// The tiny model with every block linear weight replaced by random e4m3 bytes of magnitude
// 2^-6 .. 0.94 (sign, exponent 1..6, any mantissa), or those values widened to float32. A `scale`
// other than 1 makes them scaled float8 (ComfyUI's scale_weight), widened times the scale.
LoadedModel f8_model(bool widen, float scale = 1.0f) {
  LoadedModel m = load_model(wantest::tiny_model(), true);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const std::regex linear(R"(^blocks\.\d+\.(self_attn|cross_attn)\.[qkvo]\.weight$|^blocks\.\d+\.ffn\.[02]\.weight$)");
  for (auto& [name, t] : m.dit) {
    if (!std::regex_match(name, linear)) continue;
    const auto shape = t.data.sizes();
    const at::Tensor sign = at::randint(0, 2, shape, g, at::kInt), exp = at::randint(1, 7, shape, g, at::kInt),
                     man = at::randint(0, 8, shape, g, at::kInt);
    t = {(sign * 128 + exp * 8 + man).to(at::kByte), DType::F8_E4M3, scale};
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
  for (float scale : {1.0f, 0.0371f}) {  // scaled float8 too: each rank keeps the scales
    T2VEngine full(f8_model(false, scale), p), part(f8_model(false, scale), p, sharded);
    EXPECT(part.placement()["dit_weight_shards"] == 2);
    EXPECT(at::equal(full.generate(r).latents, part.generate(r).latents));
  }
}

TEST(f8_scaled_block_linears_give_the_dequantized_latents) {
  // ComfyUI's scaled fp8: each weight is its float8 value times a float32 scale. Kept float8 with
  // the scale applied at each use, the latents equal those of the same weights dequantized at
  // load (float32 product, rounded once to the compute dtype), bit for bit: on the CPU in f32
  // and bf16, and on a GPU in bf16 where CUDA scales the decoded bf16 weight in place.
  const float scale = 0.0371f;  // not a power of two: the products round
  EXPECT(dit_keeps_f8(f8_model(false, scale).dit));
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0, 11);
  std::vector<std::pair<std::string, std::string>> runs{{"cpu", "f32"}, {"cpu", "bf16"}};
  if (cuda_available()) runs.push_back({"cuda:0", "bf16"});
  for (const auto& [devices, dtype] : runs) {
    ParallelOptions p;
    p.devices = devices;
    ComputeOptions c;
    c.dtype = dtype;
    T2VEngine f8(f8_model(false, scale), p, c), wide(f8_model(true, scale), p, c), unscaled(f8_model(false), p, c);
    EXPECT(f8.placement()["dit_f8_params"].get<int64_t>() > 0 && wide.placement()["dit_f8_params"] == 0);
    const at::Tensor a8 = f8.generate(r).latents, aw = wide.generate(r).latents, a1 = unscaled.generate(r).latents;
    std::printf("     %s %s: scaled float8 vs dequantized: latents %s; vs the scale ignored: rel L2 %.3g\n",
                devices.c_str(), dtype.c_str(), at::equal(a8, aw) ? "bitwise equal" : "DIFFER", wantest::rel_l2(a1, aw));
    EXPECT(at::equal(a8, aw));
    EXPECT(wantest::rel_l2(a1, aw) > 1e-2);  // the scale matters: ignoring it changes the result
  }
}

TEST(f8_encode_rounds_to_the_nearest_value_ties_to_even) {
  for (DType t : {DType::F8_E4M3, DType::F8_E5M2}) {
    // Every finite code decodes and encodes back to itself (both zeros included).
    const int64_t top = t == DType::F8_E4M3 ? 0x7E : 0x7B;
    const at::Tensor codes = at::cat({at::arange(0, top + 1, at::kLong), at::arange(128, 128 + top + 1, at::kLong)}).to(at::kByte);
    const at::Tensor values = to_float32({codes, t});
    EXPECT(at::equal(encode_f8(values, t), codes));
    // Halfway between two neighbours goes to the even code; a little off it, to the nearer one.
    const at::Tensor lo = values.narrow(0, 1, top - 1), hi = values.narrow(0, 2, top - 1);
    const at::Tensor mid = (lo.to(at::kDouble) + hi.to(at::kDouble)).div(2).to(at::kFloat);
    const at::Tensor lo_code = at::arange(1, top, at::kLong);
    const at::Tensor even = at::where(lo_code.remainder(2).eq(0), lo_code, lo_code + 1);
    EXPECT(at::equal(encode_f8(mid, t).to(at::kLong), even));
    EXPECT(at::equal(encode_f8(-mid, t).to(at::kLong), even + 128));
    EXPECT(at::equal(encode_f8(at::nextafter(mid, lo), t).to(at::kLong), lo_code));
    EXPECT(at::equal(encode_f8(at::nextafter(mid, hi), t).to(at::kLong), lo_code + 1));
  }
  EXPECT_ERROR(encode_f8(at::full({3}, 449.0f), DType::F8_E4M3), "449", "448", "scale it first");
  EXPECT_ERROR(encode_f8(at::full({2}, NAN), DType::F8_E5M2), "NaN");
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  // The same bytes as ATen's float8 cast on values in range.
  const at::Tensor x = at::randn({100000}) * 40;
  EXPECT(at::equal(encode_f8(x.clamp(-448, 448), DType::F8_E4M3), x.clamp(-448, 448).to(at::kFloat8_e4m3fn).view(at::kByte)));
  EXPECT(at::equal(encode_f8(x, DType::F8_E5M2), x.to(at::kFloat8_e5m2).view(at::kByte)));
  std::printf("     equal to ATen's float8 casts (libtorch %s)\n", TORCH_VERSION);
#else
  std::printf("     (libtorch %s has no float8 cast to compare with)\n", TORCH_VERSION);
#endif
}

TEST(comfyui_fp8_scaled_checkpoint_stays_float8_with_its_scales) {
  // make-tiny --layout comfyui-fp8 writes ComfyUI's scaled-fp8 repacks: the DiT's and UMT5's
  // block linears as e4m3 bytes of w / scale, the float32 scale_weight beside each, the
  // scaled_fp8 marker. Loaded, each weight is worth the bf16 repack's within e4m3 rounding
  // (3 mantissa bits: at most 2^-4 relative), the DiT keeps them float8, and the whole pipeline
  // follows the bf16 repack's (same seed) at that precision.
  const std::string f8_dir = wantest::tiny_model("comfyui-fp8", 4), bf16_dir = wantest::tiny_model("comfyui", 4);
  const LoadedModel f8 = load_model(f8_dir), bf = load_model(bf16_dir);
  EXPECT(f8.files.layout == Layout::ComfyUI);
  EXPECT(std::filesystem::exists(f8_dir + "/diffusion_models/wan2.1_t2v_tiny_fp8_scaled.safetensors"));
  EXPECT(std::filesystem::exists(f8_dir + "/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"));
  int scaled = 0;
  double worst = 0;
  for (const TensorMap* m : {&f8.dit, &f8.t5}) {
    const TensorMap& ref = m == &f8.dit ? bf.dit : bf.t5;
    for (const auto& [name, t] : *m) {
      if (!is_f8(t.dtype)) continue;
      ++scaled;
      EXPECT(t.scale != 1.0f && t.scale > 0);
      const at::Tensor want = to_float32(ref.at(name));
      EXPECT(std::abs(to_float32(t).abs().max().item<float>() - want.abs().max().item<float>()) <=
             1e-6f * want.abs().max().item<float>());  // the largest weight lands on 448 * scale
      worst = std::max(worst, wantest::rel_l2(to_float32(t), want));
    }
  }
  const DitArch& a = f8.arch.dit;
  EXPECT(scaled == a.num_layers * 10 + f8.arch.t5.num_layers * 7);
  std::printf("     %d scaled float8 weights, worst rel L2 vs the bf16 repack %.3g\n", scaled, worst);
  EXPECT(worst < 0.0625);
  const T2VEngine e8(f8_dir), eb(bf16_dir);
  EXPECT(e8.placement()["dit_f8_params"] == a.num_layers * (8 * a.dim * a.dim + 2 * a.dim * a.ffn_dim));
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0, 11);
  const T2VResult o8 = e8.generate(r), ob = eb.generate(r);
  const double e_ctx = wantest::rel_l2(o8.context, ob.context), e_lat = wantest::rel_l2(o8.latents, ob.latents);
  std::printf("     pipeline vs the bf16 repack: context rel L2 %.3g, latents %.3g\n", e_ctx, e_lat);
  EXPECT(e_ctx < 0.1 && e_lat < 0.1);
  // A scale_weight that is not one finite float32 is named.
  const std::string bad = wantest::scratch("comfy-bad-scale");
  std::filesystem::copy(f8_dir, bad, std::filesystem::copy_options::recursive);
  const std::string dit_file = bad + "/diffusion_models/wan2.1_t2v_tiny_fp8_scaled.safetensors";
  TensorMap raw = load_safetensors(dit_file, false);
  raw["model.diffusion_model.blocks.0.ffn.0.scale_weight"] = stored(at::ones({2}));
  save_safetensors(dit_file, raw);
  EXPECT_ERROR(load_model(bad), "blocks.0.ffn.0.scale_weight", "one float32 scale", "2 elements");
  // Writing a scaled tensor to a file without its scale would lose it: refused.
  TensorMap one{{"w", f8.dit.at("blocks.0.ffn.0.weight")}};
  EXPECT_ERROR(save_safetensors(wantest::scratch("lost-scale.safetensors"), one), "float8 scale", "lost");
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
  o.engine.parallel.devices = "cuda:0";  // inspect needs no GPU
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

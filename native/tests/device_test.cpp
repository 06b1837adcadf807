// The device/dtype layer: placement parsing, errors for devices a build or machine lacks, and the
// bf16 compute path, run on the CPU (the same code a CUDA device runs) against float32.
#include <cmath>

#include "tools/doctor.h"
#include "tools/device_parity.h"
#include "common/cuda.h"
#include "kernels/attention.h"
#include "models/dit.h"
#include "models/memory_model.h"
#include "models/placement.h"
#include "models/random_weights.h"
#include "parallel/process_group.h"
#include "pipeline/t2v.h"
#include "test.h"

TEST(placement_parse) {
  EXPECT(wan::parse_device("cpu").is_cpu());
  EXPECT(wan::parse_device("cuda").index() == 0);
  EXPECT(wan::parse_device("cuda:3").index() == 3);
  EXPECT_ERROR(wan::parse_device("gpu:0"), "gpu:0", "cpu, cuda, cuda:N");
  EXPECT_ERROR(wan::parse_device("cuda:x"), "cuda:x");
  EXPECT(wan::parse_compute_dtype("bf16") == at::kBFloat16);
  EXPECT(wan::parse_compute_dtype("float32") == at::kFloat);
  EXPECT_ERROR(wan::parse_compute_dtype("f64"), "f64", "f32, bf16, f16");
  EXPECT(wan::default_compute_dtype(at::Device(at::kCUDA, 0)) == at::kBFloat16);
  EXPECT(wan::default_compute_dtype(at::kCPU) == at::kFloat);
  EXPECT_ERROR(wan::set_attention_backend("fast"), "fast", "flash");
}

TEST(placement_converts_on_the_device) {
  // bf16 stored -> f32 placement: the exact values; f8 widened through its table.
  at::Tensor v = at::tensor({1.5f, -2.25f, 0.0f}).to(at::kBFloat16);
  at::Tensor p = wan::place(wan::stored(v), {at::kCPU, at::kFloat});
  EXPECT(p.scalar_type() == at::kFloat && at::equal(p, v.to(at::kFloat)));
  at::Tensor b = wan::place(wan::stored(at::tensor({1.0f, 3.0f})), {at::kCPU, at::kBFloat16});
  EXPECT(b.scalar_type() == at::kBFloat16 && b.is_contiguous());
  EXPECT_ERROR(wan::place(wan::stored(at::tensor({1, 2}, at::kLong)), {at::kCPU, at::kFloat}), "integer");
}

TEST(cuda_devices_absent_are_named) {
  if (wan::cuda_available()) return;  // the GPU machine runs the CUDA parity instead (wanlab-engine parity)
  const std::string dir = wantest::tiny_model();
  wan::ParallelOptions p;
  p.devices = "cuda:0";
  EXPECT_ERROR(wan::T2VEngine(dir, p), "cuda:0", "no CUDA device is visible");
  wan::ComputeOptions c;
  c.t5_device = "cuda:1";
  EXPECT_ERROR(wan::T2VEngine(dir, {}, c), "t5 device 'cuda:1'", "no CUDA device");
  p.devices = "cpu:0,cuda:0";
  EXPECT_ERROR(wan::T2VEngine(dir, p), "cpu:0,cuda:0");
}

TEST(dit_budget_needs_cuda) {
  wan::LoadedModel m = wan::random_model("tiny", 0, at::kCPU, at::kFloat);
  wan::DitOptions o;
  o.persistent_params = 1000;
  EXPECT_ERROR(wan::WanDiT(m.dit, m.arch.dit, o), "persistent-parameter budget", "CUDA");
}

TEST(random_model_matches_the_tiny_checkpoint) {
  // In-memory random weights on the CPU are the tensors make-tiny writes (same recipe, same seed).
  wan::LoadedModel mem = wan::random_model("tiny", 0, at::kCPU, at::kFloat);
  wan::LoadedModel disk = wan::load_model(wantest::tiny_model(), true);
  EXPECT(mem.dit.size() == disk.dit.size() && mem.t5.size() == disk.t5.size() && mem.vae.size() == disk.vae.size());
  for (const auto& [name, t] : disk.dit) EXPECT(at::equal(wan::to_float32(t), wan::to_float32(mem.dit.at(name))));
  for (const auto& [name, t] : disk.t5) EXPECT(at::equal(wan::to_float32(t), wan::to_float32(mem.t5.at(name))));
}

TEST(bf16_path_tracks_float32_on_cpu) {
  // The CUDA code path (bf16 weights and matmuls; float32 norms, modulation, residual, RoPE and
  // sampler) run on the CPU: every component close to float32, none identical (it really ran bf16).
  wan::ParityOptions o;
  o.device = "cpu";
  o.dtype = "bf16";
  o.height = 32, o.width = 32, o.frames = 5, o.steps = 2;
  nlohmann::json j = wan::device_parity(wantest::tiny_model(), o);
  for (const char* c : {"t5", "dit", "vae_decode", "t2v_context", "t2v_latents", "t2v_video"}) {
    const double e = j[c]["rel_l2"].get<double>();
    std::cout << "    bf16 vs f32 " << c << ": rel L2 " << e << "\n";
    EXPECT(e > 0 && e < 0.05);
  }
  EXPECT(j["placement"]["t5"] == "cpu bf16");
}

TEST(nccl_one_rank_collectives) {
  // The NCCL path with one rank on the first GPU: a TCPStore rendezvous, ProcessGroupNCCL, and the
  // collectives the sequence-parallel DiT uses, on bf16 tensors. CPU builds: nothing to check.
  if (!wan::cuda_available()) {
    std::cout << "    (no CUDA device: NCCL not exercised here)\n";
    return;
  }
  auto rdv = wan::Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(30));
  wan::RankContext ctx;
  ctx.device = at::Device(at::kCUDA, 0);
  ctx.device_name = "cuda:0";
  ctx.timeout = std::chrono::seconds(30);
  wan::Communicator c(ctx, *rdv, "sp", {0}, "nccl-test", "127.0.0.1");
  at::Tensor x = at::randn({4, 3, 8}, at::TensorOptions().device(ctx.device)).to(at::kBFloat16);
  EXPECT(at::equal(c.all_to_all(x, "test all_to_all").cpu(), x.cpu()));
  at::Tensor g = c.all_gather(x, "test all_gather").cpu();
  EXPECT(g.numel() == x.numel() && at::equal(g.reshape(x.sizes()), x.cpu()));
  EXPECT(ctx.stats.collectives >= 2);
  // In flight beside a matmul on the compute stream, waited in reverse order.
  wan::Pending pg = c.start_all_gather(x, "test all_gather in flight");
  wan::Pending pa = c.start_all_to_all(x, "test all_to_all in flight");
  at::Tensor busy = at::mm(at::ones({1024, 1024}, x.options()), at::ones({1024, 1024}, x.options()));
  EXPECT(at::equal(pa.wait().cpu(), x.cpu()));
  EXPECT(at::equal(pg.wait().cpu().reshape(x.sizes()), x.cpu()));
  EXPECT(busy[0][0].item<float>() == 1024.f);
  std::cout << "    NCCL one rank on cuda:0: all_to_all and all_gather ok (" << ctx.stats.bytes_sent << " bytes)\n";
}

TEST(attention_parts_merge_to_whole_attention_on_each_device) {
  // Keys in two unequal parts, each through attention_part (CUDA bf16: the flash kernel, which
  // returns the log-sum-exp; CPU float32: the chunked path), folded with merge_attention_part,
  // against one attention over all keys and the float32 log-sum-exp of the scores.
  std::vector<std::pair<at::Device, at::ScalarType>> runs{{at::kCPU, at::kFloat}};
  if (wan::cuda_available()) runs.push_back({at::Device(at::kCUDA, 0), at::kBFloat16});
  for (const auto& [dev, dt] : runs) {
    at::Generator g = wan::seeded_generator(dev, 11);
    const auto o = at::TensorOptions().device(dev);
    const at::Tensor q = at::randn({1, 4, 96, 128}, g, o).to(dt), k = at::randn({1, 4, 300, 128}, g, o).to(dt),
                     v = at::randn({1, 4, 300, 128}, g, o).to(dt);
    at::Tensor acc, lse;
    wan::merge_attention_part(acc, lse, wan::attention_part(q, k.narrow(2, 0, 120), v.narrow(2, 0, 120)));
    wan::merge_attention_part(acc, lse, wan::attention_part(q, k.narrow(2, 120, 180), v.narrow(2, 120, 180)));
    const at::Tensor whole = wan::attention(q, k, v).to(at::kFloat);
    const at::Tensor want_lse =
        at::logsumexp(at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-2, -1)) / std::sqrt(128.0), -1);
    const double e_out = wantest::rel_l2(acc.cpu(), whole.cpu()), e_lse = wantest::rel_l2(lse.cpu(), want_lse.cpu());
    std::cout << "    " << dev << " " << dt << ": merged parts vs whole rel L2 " << e_out << ", lse " << e_lse << "\n";
    // bf16: the output is rounded to 8 bits of mantissa; the log-sum-exp stays float32. float32:
    // the whole attention and the parts sum in different orders (3.1e-6 on the H200 machine's 16
    // cores with libtorch 2.11).
    EXPECT(e_out < (dt == at::kFloat ? 1e-5 : 1e-2) && e_lse < (dt == at::kFloat ? 1e-5 : 1e-3));
  }
}

TEST(doctor_device_checks_run_on_the_cpu) {
  // The checks doctor runs on each GPU, here on the CPU: every numeric check passes and the own
  // kernels say why they are unavailable, so a mistake in a check's own setup (such as a RoPE
  // table DiffSynth's split cannot make) fails here rather than first on a lent GPU.
  const nlohmann::json c = wan::device_checks(at::Device(at::kCPU));
  for (const char* name : {"matmul_bf16", "attention_bf16", "ring_attention_part_bf16"}) {
    EXPECT(c.contains(name));
    EXPECT(c[name].value("ok", false));
  }
  for (const char* name : {"own_kernel_rope", "own_kernel_layer_norm"}) {
    EXPECT(c.contains(name) && !c[name].contains("error"));
    EXPECT(c[name].value("unavailable", std::string()).find("CUDA") != std::string::npos);
  }
}

TEST(memory_model_accounts_like_the_engine) {
  const wan::ModelArch a = wan::preset_arch("14B");
  wan::MemoryPlanOptions o;
  const wan::MemoryPlan all = wan::plan_memory(a, o);
  EXPECT(all.dit_resident == 14288491584LL * 2);  // every DiT parameter in bf16
  // --persistent-params 4G: the H200 engine kept 3,746,662,464 parameters (embeddings, head and
  // ten blocks) and streamed 30 blocks (bench/results/2026-11-26-h200/t2v_14B_480p_budget4G.json).
  o.persistent_params = 4000000000LL;
  const wan::MemoryPlan budget = wan::plan_memory(a, o);
  EXPECT(budget.dit_resident == 3746662464LL * 2);
  EXPECT(budget.dit_streamed > 0 && budget.denoise() < all.denoise());
  // Sharded over 8 ranks: an eighth of each block plus the embeddings and head, two blocks
  // gathered (the one computing and the next).
  o.persistent_params = -1;
  o.sequence_parallel = 8;
  o.shard_weights = true;
  const wan::MemoryPlan shard = wan::plan_memory(a, o);
  EXPECT(shard.dit_resident < all.dit_resident / 8 + 2 * 232719424LL * 2);
  EXPECT(shard.dit_streamed == 2 * 351394304LL * 2);  // one 14B block: 351,394,304 parameters
  EXPECT(shard.dit_activations * 8 <= all.dit_activations + 8 * 1024);
  // A budget: the largest persistent count that fits, -1 when all fits, -2 when nothing does.
  o = {};
  EXPECT(wan::persistent_params_for_budget(a, o, int64_t(200e9)) == -1);
  const int64_t p = wan::persistent_params_for_budget(a, o, int64_t(30e9));
  o.persistent_params = p;
  EXPECT(p > 0 && wan::plan_memory(a, o).peak() <= int64_t(30e9));
  EXPECT(wan::persistent_params_for_budget(a, {}, int64_t(5e9)) == -2);
  // The VAE on another device (--vae-device): neither its weights nor its decode are here.
  o = {};
  o.vae_on_device = false;
  const wan::MemoryPlan no_vae = wan::plan_memory(a, o);
  EXPECT(no_vae.vae == 0 && no_vae.vae_activations == 0 && no_vae.decode() == no_vae.resident());
  EXPECT(all.resident() - no_vae.resident() == all.vae);
  EXPECT(wan::gb_text(int64_t(24e9)) == "24.00 GB" && wan::gb_text(99787564) == "99.8 MB");
  // Host memory beside a GPU: the streamed blocks pinned in bf16 (--persistent-params 4G pinned
  // 21 GB on the H200: the 10,541,829,120 parameters past the 3,746,662,464 kept), and a CPU text
  // encoder in float32 with its activations; nothing on a CPU engine or with every weight resident.
  o = {};
  o.gpu = true;
  EXPECT(wan::plan_memory(a, o).host() == 0);
  o.persistent_params = 4000000000LL;
  o.t5_on_device = false;
  const wan::MemoryPlan offload = wan::plan_memory(a, o);
  EXPECT(offload.host_pinned == (14288491584LL - 3746662464LL) * 2);
  EXPECT(offload.host_t5 == wan::count_params(wan::t5_specs(a.t5)) * 4 && offload.host_activations > 0);
  EXPECT(offload.t5 == 0 && offload.host() == offload.host_pinned + offload.host_t5 + offload.host_activations);
  o.gpu = false;
  EXPECT(wan::plan_memory(a, o).host() == 0);
}

TEST(memory_model_t5_offload_holds_the_text_encoder_while_encoding_only) {
  const wan::ModelArch a = wan::preset_arch("14B");
  wan::MemoryPlanOptions o;
  o.gpu = true;
  const wan::MemoryPlan resident = wan::plan_memory(a, o);
  o.t5_offload = true;
  const wan::MemoryPlan offloaded = wan::plan_memory(a, o);
  const int64_t t5 = wan::count_params(wan::t5_specs(a.t5)) * 2;  // bf16
  EXPECT(resident.t5 == t5 && offloaded.t5 == 0 && offloaded.t5_streamed == t5);
  EXPECT(offloaded.encode() == resident.encode());
  EXPECT(resident.denoise() - offloaded.denoise() == t5 && resident.decode() - offloaded.decode() == t5);
  EXPECT(offloaded.host_t5 == t5 && resident.host_t5 == 0);  // pinned on the host between prompts
  EXPECT(offloaded.host_pinned == resident.host_pinned && offloaded.host_activations == 0);
  std::printf("     14B 480p: denoise %.2f -> %.2f GB with the text encoder offloaded (%.2f GB pinned on the host)\n",
              resident.denoise() / 1e9, offloaded.denoise() / 1e9, offloaded.host_t5 / 1e9);
  // Offloaded to encode on another GPU: pinned on the host all the same, nothing on this one.
  o.t5_on_device = false;
  const wan::MemoryPlan elsewhere = wan::plan_memory(a, o);
  EXPECT(elsewhere.t5 == 0 && elsewhere.t5_streamed == 0 && elsewhere.host_t5 == t5 && elsewhere.host_activations == 0);
  // The engine: offload is for a CUDA text encoder; on the CPU it is refused, naming why.
  wan::ComputeOptions c;
  c.t5_offload = true;
  EXPECT_ERROR(wan::T2VEngine(wantest::tiny_model(), {}, c), "t5 offload", "runs on cpu");
  if (wan::cuda_available()) {
    wan::ParallelOptions p;
    p.devices = "cuda:0";
    const wan::T2VEngine e(wantest::tiny_model(), p, c), plain(wantest::tiny_model(), p);
    EXPECT(e.placement()["t5_offload"] == true && plain.placement()["t5_offload"] == false);
    const wan::T2VRequest r = wantest::tiny_request(32, 32, 5, 2, 5.0, 3);
    EXPECT(at::equal(e.generate(r).latents, plain.generate(r).latents));
    EXPECT(e.memory_plan(r).t5_streamed > 0 && e.memory_plan(r).t5 == 0);
  }
}

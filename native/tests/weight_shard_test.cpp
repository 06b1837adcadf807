// Weight sharding across a device group (ComputeOptions::shard_weights, DitOptions::weight_shards):
// each rank keeps 1/sp of every DiT block and all-gathers a block just before computing it. The
// gathered weights are the same bytes, so a sharded group gives the unsharded group's latents
// bit for bit (CPU ranks over Gloo here; NCCL on CUDA ranks runs the same code).
#include <cstdio>

#include "models/dit.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;


TEST(weight_shards_give_the_unsharded_latents) {
  struct Case {
    const char* devices;
    int ulysses, ring;
    bool cfg;
  } cases[] = {{"cpu:0-1", 2, 1, false}, {"cpu:0-3", 2, 2, false}, {"cpu:0-3", 1, 2, true}};
  const T2VRequest r = wantest::tiny_request(48, 48, 5, 2, 5.0, 11);  // 18 tokens
  for (const Case& c : cases) {
    ParallelOptions p;
    p.devices = c.devices, p.ulysses = c.ulysses, p.ring = c.ring, p.cfg_parallel = c.cfg, p.timeout_s = 60;
    ComputeOptions sharded;
    sharded.shard_weights = true;
    T2VEngine full(wantest::tiny_model(), p), part(wantest::tiny_model(), p, sharded);
    const int sp = c.ulysses * c.ring;
    EXPECT(part.placement()["dit_weight_shards"] == sp);
    // Each rank holds its 1/sp of the blocks (rounded up) plus the unsharded embeddings and head.
    const int64_t all = full.placement()["dit_resident_params"].get<int64_t>();
    const int64_t mine = part.placement()["dit_resident_params"].get<int64_t>();
    EXPECT(mine < all && mine > all / sp);
    const at::Tensor a = full.generate(r).latents, b = part.generate(r).latents;
    std::printf("     %s ulysses %d ring %d%s: %lld of %lld DiT params per rank, latents equal: %s\n", c.devices,
                c.ulysses, c.ring, c.cfg ? " cfg" : "", (long long)mine, (long long)all,
                at::equal(a, b) ? "bitwise" : "NO");
    EXPECT(at::equal(a, b));
  }
}

TEST(weight_shard_errors_are_named) {
  ComputeOptions sharded;
  sharded.shard_weights = true;
  ParallelOptions one;
  EXPECT_ERROR(T2VEngine(wantest::tiny_model(), one, sharded), "shard weights", "sequence-parallel group");
  ParallelOptions cfg_only;
  cfg_only.devices = "cpu:0-1", cfg_only.cfg_parallel = true;
  EXPECT_ERROR(T2VEngine(wantest::tiny_model(), cfg_only, sharded), "ulysses x ring >= 2");
  LoadedModel m = load_model(wantest::tiny_model(), true);
  DitOptions o;
  o.weight_shards = 2, o.weight_shard = 2;
  EXPECT_ERROR(WanDiT(m.dit, m.arch.dit, o), "weight shard 2 of 2");
  o.weight_shard = 0;
  WanDiT d(m.dit, m.arch.dit, o);
  at::Tensor x = at::zeros({16, 1, 4, 4}), ctx = at::zeros({512, m.arch.dit.text_dim});
  EXPECT_ERROR(d.forward(x, 500.0, ctx), "sharded 2 ways", "group");
}

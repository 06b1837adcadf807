// The N-GPU projection's model (tools/projection_model.h) on hand-computed numbers: collective
// times on preset and measured links, the engine's bytes and collectives per step, and what the
// overlap schedule leaves exposed for ring, Ulysses, sharded weights and CFG-parallel.
#include <cmath>

#include "common/error.h"
#include "tools/projection_model.h"
#include "test.h"

using namespace wan;

namespace {

void near(double got, double want, const char* what) {
  if (std::abs(got - want) > 1e-9 * std::max(1.0, std::abs(want)))
    throw wantest::Failure{concat(what, ": got ", got, ", expected ", want)};
}

// D 100, 4 heads, 10 layers, 1000 tokens, C' 64, a velocity of 1000 floats, bf16, CFG on.
ProjectionShape shape(int64_t heads = 4) {
  ProjectionShape s;
  s.dim = 100, s.heads = heads, s.layers = 10, s.tokens = 1000, s.head_channels = 64, s.velocity_elements = 1000;
  s.elem_bytes = 2, s.cfg = true;
  return s;
}

// Within a node 1 GB/s, between nodes 0.1 GB/s, 1 ms per call; 8 GPUs per node.
ProjectionLinks links(int per_node = 8) {
  ProjectionLinks l;
  l.intra = {"intra", 1e9, 1e-3, {}, 0};
  l.inter = {"inter", 1e8, 1e-3, {}, 0};
  l.gpus_per_node = per_node;
  return l;
}

RankCompute busy() { return {0.010, 0.008, 0.002, 0.001, 0.005}; }   // attention hides every transfer
RankCompute short_attention() { return {0.010, 0.001, 0.0, 0.001, 0.005}; }  // it hides little

ProjectionLayout layout(int u, int r, bool cfg = false, bool shard = false) { return {u, r, cfg, shard}; }

}  // namespace

TEST(projection_collective_times_on_preset_links) {
  const LinkSpeed l{"l", 1e9, 1e-3, {}, 0};
  near(collective_s(l, "all_to_all", 4e6, 4), 1e-3 + 3e6 / 1e9, "all-to-all sends (u-1)/u");
  near(collective_s(l, "send/recv", 4e6, 4), 1e-3 + 4e6 / 1e9, "a ring pass sends all of it");
  near(collective_s(l, "all_gather", 4e6, 4), 1e-3 + 12e6 / 1e9, "an all-gather sends (n-1) x");
  near(collective_s(l, "all_gather", 4e6, 1), 0, "one rank sends nothing");
  near(collective_s(link_preset("nvlink4"), "send/recv", 450e6, 2), 20e-6 + 1e-3, "nvlink4: 450 GB/s, 20 us");
  near(link_preset("ib400").bytes_per_s, 50e9, "ib400: 400 Gb/s");
  EXPECT_ERROR(link_preset("nvlink9"), "nvlink9", "nvlink4, ib400, pcie4", "wanlab doctor");
}

TEST(projection_collective_times_on_measured_links) {
  nlohmann::json r = {{"world", 4}, {"measures", nlohmann::json::array()}};
  for (const char* op : {"all_to_all", "all_gather", "send/recv"}) {
    r["measures"].push_back({{"op", op}, {"bytes", 3000}, {"latency_s", 2e-3}, {"bytes_per_s", 1.5e6}});
    r["measures"].push_back({{"op", op}, {"bytes", 1000}, {"latency_s", 1e-3}, {"bytes_per_s", 1e6}});
  }
  const LinkSpeed l = link_from_doctor(r, "links.json");
  EXPECT(l.measured_world == 4);
  near(collective_s(l, "all_to_all", 2000, 4), 1.5e-3, "between two sizes: linear");
  near(collective_s(l, "send/recv", 500, 2), 1e-3, "below the smallest: its latency");
  near(collective_s(l, "all_gather", 6000, 4), 4e-3, "above the largest: at its bytes per second");
  nlohmann::json partial = {{"measures", {{{"op", "all_to_all"}, {"bytes", 1000}, {"latency_s", 1e-3}}}}};
  EXPECT_ERROR(link_from_doctor(partial, "p.json"), "p.json", "no measure of all_gather");
  EXPECT_ERROR(link_from_doctor(nlohmann::json::object(), "x.json"), "x.json", "measures", "wanlab doctor --devices");
}

TEST(projection_layout_names_round_trip) {
  for (const char* n : {"1", "u2", "r4", "u4r2", "cfg", "cfg-u2", "cfg-u2r2", "u8r2-shard", "cfg-r4-shard"})
    EXPECT(projection_layout_name(parse_projection_layout(n)) == n);
  const ProjectionLayout l = parse_projection_layout("cfg-u4r2");
  EXPECT(l.ulysses == 4 && l.ring == 2 && l.cfg_parallel && l.gpus() == 16);
  for (const char* bad : {"u1", "x2", "cfg2", "u2r", "1-shard", "cfg-shard", "u2u2"})
    EXPECT_ERROR(parse_projection_layout(bad), bad, "1, uN, rN, uNrM, cfg");
}

TEST(projection_ring_hides_its_passes_behind_attention) {
  const Projection p = project_step(shape(), layout(1, 2), busy(), links());
  // Ls 500; a pass sends K and V, 2 x 100 x 500 x 2 B = 200 000 B: 1 ms + 0.2 ms, against 5 ms
  // of attention and merge per pass.
  EXPECT(p.tokens_per_rank == 500 && p.head_groups == 1 && p.passes == 2);
  near(p.ring_comm_s, 1.2e-3, "ring transfer");
  near(p.ring_exposed_s, 0, "ring exposed");
  near(p.block_compute_s, 0.021, "block compute");
  near(p.block_s, 0.021, "block");
  near(p.gather_s, 1e-3 + 64000 / 1e9, "output all-gather: 500 x 64 x 2 B");
  near(p.flag_s, 1e-3 + 4 / 1e9, "cancel flag");
  near(p.forward_s, 10 * 0.021 + 0.005 + 1.064e-3, "forward");
  near(p.step_s, 2 * 0.216064 + 1.000004e-3, "step: 2 passes");
  near(p.bytes_per_step, 4 + 2 * (10 * 200000 + 64000), "bytes, src/parallel-model.ts's formula");
  EXPECT(p.collectives_per_step == 1 + 2 * (10 * 1 + 1));
  near(p.measured_per_step_s, 2 * (10 * 0.021 + 0.005), "measured part");
  near(p.exposed_per_step_s, p.step_s - p.measured_per_step_s, "exposed part");
}

TEST(projection_ring_exposes_what_a_short_pass_cannot_hide) {
  const Projection p = project_step(shape(), layout(1, 4), short_attention(), links());
  // Ls 250: 100 000 B per pass, 1.1 ms, against 1 ms / 4 passes = 0.25 ms of attention each.
  near(p.ring_comm_s, 3 * 1.1e-3, "3 transfers");
  near(p.ring_exposed_s, 3 * (1.1e-3 - 0.25e-3), "exposed");
  near(p.block_s, 0.010 + 0.001 + 0.001 + 3 * 0.85e-3, "block");
}

TEST(projection_ulysses_exposes_the_first_inbound_and_last_outbound_group) {
  // 4 heads over Ulysses 2: 2 heads per rank in 2 groups. Per group q/k/v 3 x 100 x 500 x 2 / 2
  // = 150 000 B, output 50 000 B, half of each leaves the rank.
  const double t_in = 1e-3 + 75000 / 1e9, t_out = 1e-3 + 25000 / 1e9;
  const Projection a = project_step(shape(), layout(2, 1), busy(), links());
  EXPECT(a.head_groups == 2);
  near(a.ulysses_comm_s, 2 * (t_in + t_out), "transfers");
  near(a.ulysses_exposed_s, t_in + t_out, "5.5 ms per group hides the rest");
  near(a.block_s, 0.010 + 2 * 0.0055 + t_in + t_out, "block");
  near(a.bytes_per_step, 4 + 2 * (10 * 4 * 100 * 500 * 2 + 64000), "bytes: 4 D Ls e per block");
  EXPECT(a.collectives_per_step == 1 + 2 * (10 * 2 * 2 + 1));
  const Projection b = project_step(shape(), layout(2, 1), short_attention(), links());
  // A group's attention and copies take 1 ms: group 1's inbound shows 0.075 ms past it, group 0's
  // outbound 0.025 ms.
  near(b.ulysses_exposed_s, t_in + t_out + 0.075e-3 + 0.025e-3, "exposed past 1 ms per group");
}

TEST(projection_sharded_weights_hide_behind_the_block) {
  ProjectionShape s = shape();
  s.shard_parts = {{1000000, 2}, {1000, 4}};
  const Projection a = project_step(s, layout(2, 1, false, true), busy(), links());
  near(a.shard_comm_s, (1e-3 + 2e6 / 1e9) + (1e-3 + 4000 / 1e9), "two flat buffers gathered");
  near(a.shard_exposed_s, 0, "under the 23.1 ms block");
  near(a.bytes_per_step, 4 + 2 * (10 * (400000 + 2004000) + 64000), "bytes with the shards");
  EXPECT(a.collectives_per_step == 1 + 2 * (10 * 2 * 2 + 1) + 2 * 10 * 2);
  s.shard_parts = {{100000000, 2}};
  const Projection b = project_step(s, layout(2, 1, false, true), busy(), links());
  near(b.shard_exposed_s, (1e-3 + 0.2) - 0.0231, "exposed past the 23.1 ms block");
  near(b.block_s, 1e-3 + 0.2, "the gather sets the pace");
}

TEST(projection_cfg_parallel_runs_one_pass_and_gathers_the_velocity) {
  const Projection p = project_step(shape(), layout(1, 1, true), busy(), links());
  EXPECT(p.passes == 1 && p.collectives_per_step == 2);
  near(p.velocity_s, 1e-3 + 4000 / 1e9, "velocity: 1000 floats to the other half");
  near(p.step_s, 10 * 0.021 + 0.005 + 1.004e-3 + 1.000004e-3, "step");
  near(p.bytes_per_step, 4 + 4000, "bytes");
}

TEST(projection_groups_past_a_node_use_the_network) {
  // Ulysses 8 x ring 2 on nodes of 8: Ulysses stays in a node, the ring crosses.
  const Projection a = project_step(shape(8), layout(8, 2), busy(), links(8));
  // Ls ceil(1000 / 16) = 63, one head per rank: one group; K and V 2 x 100 x 63 x 2 = 25 200 B.
  EXPECT(a.tokens_per_rank == 63 && a.head_groups == 1);
  near(a.ring_comm_s, 1e-3 + 25200 / 1e8, "ring over the network");
  const Projection b = project_step(shape(8), layout(8, 2), busy(), links(16));
  near(b.ring_comm_s, 1e-3 + 25200 / 1e9, "ring within one node of 16");
  EXPECT_ERROR(project_step(shape(4), layout(8, 1), busy(), links()), "ulysses 8", "4 heads");
}

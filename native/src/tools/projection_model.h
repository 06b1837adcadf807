// The model behind `wanlab-engine bench projection`: one rank's measured compute per DiT block,
// the engine's own communication per block (the byte formula of src/parallel-model.ts, which the
// engine's counters equal), link speeds (stated presets or `wanlab doctor --devices --json`'s
// measurements), combined through the engine's overlap schedule:
//   ring (parallel/ring.h): pass p's K/V exchange travels while pass p's attention and merge run;
//     exposed per pass max(0, transfer - that pass's compute), r - 1 transfers per head group.
//   Ulysses (parallel/ulysses.h): a rank's H/u heads in G head groups (kUlyssesChunks); the first
//     group's q/k/v all-to-all and the last group's output all-to-all are exposed; group g+1's
//     inbound travels during group g's attention and group g's outbound during group g+1's.
//   sharded weights: block i+1's all-gather travels during block i's whole compute.
//   the output all-gather (per forward), the CFG velocity all-gather and the cancel flag (per step)
//   are exposed.
// Everything here is arithmetic: no tensors, so it is unit-tested on hand-computed numbers.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace wan {

// One kind of link between GPUs.
struct LinkSpeed {
  std::string name;         // "nvlink4", "ib400", "pcie4", or the file it was read from
  double bytes_per_s = 0;   // per GPU and direction (presets)
  double latency_s = 0;     // per collective call (presets)
  // Measured: per op ("all_to_all", "all_gather", "send/recv"), (bytes handed per rank, seconds
  // per call) in ascending bytes. Empty: the preset's formula.
  std::map<std::string, std::vector<std::pair<double, double>>> measured;
  int measured_world = 0;   // ranks the measurement ran on
};

// "nvlink4" (450 GB/s per direction per GPU, H100 SXM), "ib400" (400 Gb/s = 50 GB/s per GPU),
// "pcie4" (25 GB/s), each with 20 us per collective (src/parallel-model.ts gpuEstimate's figure);
// an error naming the allowed names otherwise.
LinkSpeed link_preset(const std::string& name);
// The link report `wanlab doctor --devices ... --json` prints (tools/links.h): every measure of
// all_to_all, all_gather and send/recv; an error naming `source` and the missing op or field.
LinkSpeed link_from_doctor(const nlohmann::json& report, const std::string& source);
// Seconds of one collective handing `bytes` per rank in a group of `group` ranks.
//   preset: latency + wire / bytes_per_s, wire = bytes (u-1)/u for all_to_all, bytes for
//           send/recv, (n-1) bytes for all_gather (ring algorithm);
//   measured: linear between the measured sizes, below the smallest its latency, above the
//           largest at the largest size's bytes per second (the group size is the measurement's).
double collective_s(const LinkSpeed& l, const std::string& op, double bytes, int group);

struct ProjectionLinks {
  LinkSpeed intra;         // between the GPUs of one node
  LinkSpeed inter;         // between nodes (each GPU's share of the network)
  int gpus_per_node = 8;
};

struct ProjectionLayout {
  int ulysses = 1, ring = 1;
  bool cfg_parallel = false;
  bool shard_weights = false;
  int sequence_parallel() const { return ulysses * ring; }
  int gpus() const { return sequence_parallel() * (cfg_parallel ? 2 : 1); }
};
// "1", "u2", "r4", "u4r2", "cfg", "cfg-u2", "cfg-u2r2", ...; parse_projection_layout reads them.
std::string projection_layout_name(const ProjectionLayout& l);
ProjectionLayout parse_projection_layout(const std::string& name);

// What the byte formula needs of the model and the video.
struct ProjectionShape {
  int64_t dim = 0, heads = 0, layers = 0;
  int64_t tokens = 0;           // the DiT's tokens over the whole video (T)
  int64_t head_channels = 64;   // C' = out_dim x patch volume
  int64_t velocity_elements = 0;  // out_dim x f x h x w: the CFG velocity, float32
  int64_t elem_bytes = 2;       // the compute dtype's (bf16 2, float32 4)
  bool cfg = true;              // cfg scale != 1: two DiT passes per step
  // --shard-weights: bytes per element of each flat buffer of a block (models/memory_model.h
  // dit_shard_parts) and its elements per rank, filled per layout by the caller.
  std::vector<std::pair<int64_t, int64_t>> shard_parts;  // (elements per rank, bytes per element)
};

// One rank's compute, measured on the device, seconds.
struct RankCompute {
  double other_s = 0;      // per block: projections, norms, RoPE, cross-attention, FFN
  double attention_s = 0;  // per block: the self-attention kernels (every head group, every ring pass)
  double merge_s = 0;      // per block: the ring's log-sum-exp merges
  double copies_s = 0;     // per block: Ulysses' packing of q/k/v and of the output
  double outside_s = 0;    // per forward: embeddings, patchify, head, unpatchify
};

struct Projection {
  int64_t tokens_per_rank = 0, head_groups = 1, passes = 1;
  double bytes_per_step = 0;        // handed to collectives per rank (the engine's bytes_sent)
  int64_t collectives_per_step = 0;
  // per block
  double block_compute_s = 0;       // measured: other + copies + attention + merge
  double ulysses_comm_s = 0, ring_comm_s = 0, shard_comm_s = 0;  // transfer time, before overlap
  double ulysses_exposed_s = 0, ring_exposed_s = 0, shard_exposed_s = 0;
  double block_s = 0;               // compute + exposed
  // per forward / step
  double gather_s = 0, velocity_s = 0, flag_s = 0;
  double forward_s = 0, step_s = 0;
  double exposed_per_step_s = 0;    // every exposed transfer of a step
  double measured_per_step_s = 0;   // passes x (layers x block compute + outside)
  nlohmann::json to_json() const;
};

Projection project_step(const ProjectionShape& s, const ProjectionLayout& l, const RankCompute& c,
                        const ProjectionLinks& links);

}  // namespace wan

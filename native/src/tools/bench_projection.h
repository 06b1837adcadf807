// `wanlab-engine bench projection`: seconds per step and for a whole video on 1, 2, 4, 8 and 16
// (two nodes of 8) GPUs, per sequence-parallel layout, from one rank's real work timed on this
// device and the engine's communication modelled over stated or measured links
// (tools/projection_model.h).
//
// Measured, on this device, with random weights at the real dims: for each distinct rank shape
// (Ulysses degree u, ring degree r, sharded or not; CFG-parallel layouts run the same rank work)
// a DiT of `blocks` + 1 blocks runs its forward as rank 0 of the layout: the rank's Ls =
// ceil(T / (u r)) tokens, RoPE rows and padding, its weight share gathered (locally) when
// sharded, and its self-attention as the engine computes it with the transfers taken out:
// Ulysses' packing in head groups, attention over the group's u Ls tokens and H / u heads, r
// ring passes over chunks of u Ls keys merged by their log-sum-exp. Each phase is timed with the
// device synchronised around it (warm-up forwards first, then the median of `iters`): the block
// without its self-attention (projections, norms, RoPE, cross-attention, FFN), the attention
// kernels, the ring merges, Ulysses' copies, and the forward outside the blocks. One rank's
// blocks are timed and multiplied by the layer count and the passes per step (the "modelled"
// part of the compute, stated in the JSON).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wan {

struct ProjectionBenchOptions {
  std::string dims = "1.3B";      // tiny | 1.3B | 14B
  int heads = 0;                  // 0: the preset's; else (tests) that many heads of dim / heads
  std::string device = "cpu";     // cpu | cuda | cuda:N
  std::string dtype;              // "": float32 on the CPU, bf16 on CUDA
  int height = 480, width = 832, frames = 81;
  int steps = 50;                 // the video's denoising steps (total_s = steps x step_s)
  double cfg_scale = 5;           // != 1: two DiT passes per step unless CFG-parallel
  std::vector<int> gpus{1, 2, 4, 8, 16};
  std::vector<std::string> layouts;  // empty: the default set per GPU count
  bool shard_weights = false;     // every layout with u r >= 2 with --shard-weights
  int blocks = 2;                 // blocks timed per forward (one more runs)
  int warmup = 1, iters = 3;
  int threads = 0;                // CPU threads (0: libtorch's default)
  uint64_t seed = 0;
  std::string link = "nvlink4";   // within a node: a preset ...
  std::string links_file;         // ... or `wanlab doctor --devices ... --json`'s report
  std::string inter_link = "ib400";  // between nodes
  int gpus_per_node = 8;
  // A previous run's JSON (same model and video): its measured rank compute is projected again
  // (other links, layouts it measured, steps) without timing anything.
  std::string measured_file;
};

// The layouts run by default for `gpus` GPUs (before the heads and tokens filter them).
std::vector<std::string> default_projection_layouts(int gpus);

nlohmann::json bench_projection(const ProjectionBenchOptions& o);

}  // namespace wan

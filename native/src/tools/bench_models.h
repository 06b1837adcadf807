// Forward-pass benchmarks of the three models against PyTorch eager running DiffSynth-Studio's own
// modules (the peer, bench/peer.py) on the same random weights and the same input, in one command.
//
//   weights: wan::random_tensor over the architecture's specs (deterministic, exact in bf16), held
//            and handed to the peer as bf16; both sides compute in float32.
//   input:   random from `seed`; DiT: latents [16, f, h, w], timestep 500, context [512, text_dim];
//            VAE: latents z [16, f, h, w] -> decode (untiled); T5: ids [1, tokens], all unmasked.
//   timing:  `warmup` untimed forwards, then `iters` timed ones; median and min.
//   memory:  VmHWM from /proc/self/status, reset (clear_refs 5) just before the forwards: the peak
//            resident set of the whole process while they run, weights included. On CUDA also the
//            caching allocator's peak bytes in live tensors (weights included) and its rise over them.
//   device:  --device cuda[:N] runs ours and the peer there, weights in bf16 (--dtype) generated on
//            the device by PyTorch's CUDA generator (models/random_weights.h; the peer draws the same
//            ones), timed with the device synchronised around each forward.
//
// The report is JSON: ours, peer (null with "peer_reason" when no python/torch/DiffSynth is
// available), the analytic FLOPs of one forward with the formula used, GFLOP/s, the relative L2
// between the two outputs (proof that both ran the same thing) and ratio_peer_over_ours (> 1: we
// are faster).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/arch.h"
#include "tools/model_flops.h"  // dit_flops, vae_decode_flops, t5_flops

namespace wan {

struct BenchOptions {
  std::string dims = "1.3B";  // wan::preset_arch name: tiny | 1.3B | 14B
  int layers = -1;            // blocks / layers to build (-1: the bench's default, see below)
  // DiT and VAE: the video size the latents stand for (frames 4k+1; height and width multiples of
  // 16 for the DiT, 8 for the VAE). -1: the bench's default for the dims.
  int frames = -1, height = -1, width = -1;
  int tokens = -1;            // T5 sequence length (-1: 512, the pipeline's text_len)
  int warmup = 1, iters = 3;
  int threads = 0;            // 0: libtorch's default (the machine's cores)
  uint64_t seed = 0;
  bool peer = true;           // false: ours only ("peer": null, reason "disabled")
  std::string python;         // "" : $WANLAB_PYTHON, else python3 when it imports torch
  std::string diffsynth;      // "" : $DIFFSYNTH_DIR
  std::string peer_script;    // "" : $WANLAB_PEER_SCRIPT, else <source>/bench/peer.py if known
  std::string device = "cpu"; // cpu | cuda | cuda:N
  std::string dtype;          // "" : float32 on the CPU, bfloat16 on CUDA
};

nlohmann::json bench_dit(const BenchOptions& o);
nlohmann::json bench_vae(const BenchOptions& o);
nlohmann::json bench_t5(const BenchOptions& o);

}  // namespace wan

// How an engine is opened: where each model computes (devices, the parallel layout, dtypes) and
// what it may use (memory budget, prompt cache). One struct, one JSON decoder, keys as the
// TypeScript API's openEngine spells them; the addon and `wanlab-engine` both decode with it.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

// Where the DiT runs: a device list and its sequence-parallel layout (parallel/devices.h).
struct ParallelOptions {
  std::string devices = "cpu";  // "cpu", "cpu:0-3", "cuda:0-7", "auto" (parallel/devices.h)
  int ulysses = 0, ring = 0;    // 0 = choose (make_layout)
  bool cfg_parallel = false;    // cond/uncond on two halves of the devices
  std::string layout;           // "auto": the degrees chosen by parallel/layout_auto.h; "": as given
  // The ranks' c10d backend: "gloo" (host memory; GPU ranks stage through pinned buffers), "nccl"
  // (CUDA ranks), "": NCCL for CUDA ranks where the build has it, else Gloo (parallel/devices.h).
  std::string transport;
  double timeout_s = 300;       // every collective
  // Several processes: "tcp://HOST:PORT" served by node 0; `devices` are this node's ranks and
  // the degrees count the whole group (devices x nnodes ranks). Every node runs the same request.
  std::string rendezvous;
  int nnodes = 1, node_rank = 0;
  // Per-rank logs (common/log.h): DIR/rank-K.log per rank ("": stderr), and the level ("error",
  // "warn", "info", "debug"; "": $WANLAB_LOG_LEVEL, else warn).
  std::string log_dir, log_level;
};

// Where each model computes and in which dtype. The DiT runs on the device list of
// ParallelOptions; the text encoder and the VAE on the first of those devices unless told otherwise.
struct ComputeOptions {
  std::string dtype;       // "f32" | "bf16" | "f16"; "": float32 on the CPU, bfloat16 on CUDA
  std::string t5_device;   // "cpu" | "cuda:N"; "": the DiT's first device (a CPU T5 computes in float32)
  // A CUDA text encoder's weights stay in pinned host memory and come to the device only to
  // encode a prompt the prompt cache lacks (DiffSynth's offload of the text encoder): the
  // denoising and decoding stages then have its bytes (11.4 GB for umt5-xxl) to themselves.
  bool t5_offload = false;
  std::string vae_device;  // same, for the VAE
  // CUDA: parameters of the DiT kept resident per device; the other blocks stream in from pinned
  // host memory (models/dit.h DitOptions). -1: all resident.
  int64_t persistent_params = -1;
  // Device groups: each rank keeps 1/sp of every DiT block's weights and all-gathers a block just
  // before computing it (sp = ulysses x ring; models/dit.h DitOptions::weight_shards).
  bool shard_weights = false;
  // Bytes of live tensors allowed per device (DiffSynth's vram_limit, counted as the memory
  // model counts them: models/memory_model.h), -1: none. With a budget the engine keeps as many
  // DiT blocks resident as leave room for a `budget_video` generation (CUDA, unless
  // persistent_params is given; all streamed when even that is too much), fails to open when the
  // weights it keeps do not fit, and refuses any request whose predicted peak exceeds the budget
  // before computing anything. kAutoBudget (models/memory_model.h): the device's memory less a
  // reserve.
  int64_t memory_budget = -1;
  struct BudgetVideo {
    int64_t height = 480, width = 832, num_frames = 81;  // DiffSynth's defaults
    bool tiled = false;
  } budget_video;
  // Host bytes of prompt embeddings kept for re-use (pipeline/prompt_cache.h; umt5-xxl: 8 MB per
  // prompt in float32); 0: encode every prompt every time.
  int64_t prompt_cache_bytes = 256LL << 20;
};

struct EngineOptions {
  ParallelOptions parallel;
  ComputeOptions compute;
};

// The options as JSON, keys as openEngine spells them (src/engine.ts), every one optional:
//   {"devices": str, "ulysses": int, "ring": int, "cfgParallel": bool, "transport": str, "timeoutS": number,
//    "rendezvous": str, "nnodes": int, "nodeRank": int, "logDir": str, "logLevel": str,
//    "dtype": str, "t5Device": str, "t5Offload": bool, "vaeDevice": str, "persistentParams": int,
//    "shardWeights": bool, "budget": bytes | "auto", "promptCacheBytes": int,
//    "budgetVideo": {"height": int, "width": int, "numFrames": int, "tiled": bool}}
// Absent keys keep the defaults above (no budget: memory_budget -1; "auto": kAutoBudget,
// models/memory_model.h). An unknown key or a value of the wrong JSON type throws ParamError
// (common/error.h) whose field is the key ("budgetVideo.height" inside budgetVideo); what the
// values mean (a device list that parses, a layout that divides the heads) is the engine's to check.
EngineOptions engine_options_from_json(const nlohmann::json& j);

}  // namespace wan

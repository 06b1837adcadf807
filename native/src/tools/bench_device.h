// Device ceilings and kernel choices, measured in the same command as the model benchmarks so the
// ratios compare like with like: the dense bf16 matmul rate (the roofline's compute ceiling) and
// the time of each SDPA backend at the DiT's attention shape.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

// C = A B with A, B [n, n] random in `dtype` on `device`: 3 warm-ups, then `iters` timed products
// (device synchronised); TFLOP/s = 2 n^3 / median time.
nlohmann::json bench_matmul(const std::string& device, int64_t n = 8192, int iters = 10, const std::string& dtype = "bf16");

// Self-attention q, k, v [1, heads, tokens, head_dim] bf16 through each SDPA backend that takes
// the shape ("auto", "flash", "cudnn", "efficient"); time per call, TFLOP/s (4 L^2 d H per call),
// and the relative L2 of each backend's output against the math backend in float32 on a slice.
nlohmann::json bench_attention(const std::string& device, int64_t tokens, int64_t heads, int64_t head_dim, int iters = 5);

// The DiT block's elementwise sequences as the engine runs them (models/dit.cpp), on [1, tokens,
// dim] at `heads`: the fused LayerNorm modulation + cast, the q/k RMSNorm, the complex64 RoPE, the
// in-place gated residual, the ring's log-sum-exp merge of an attention part (per ring pass, not
// counted in the block's sum) and the gelu epilogue's alternative (linear then gelu). For each: time,
// the bytes a single fused pass would move (each input read once, each output written once), the
// device's copy bandwidth measured in the same call, and the time a fused kernel at that
// bandwidth would take: the most an own kernel could save, per block and per forward.
nlohmann::json bench_elementwise(const std::string& device, int64_t tokens, int64_t dim, int64_t heads, int64_t ffn_dim,
                                 int64_t layers, int iters = 10);

}  // namespace wan

// Per-rank peak memory (parallel/rank_memory.h): on CPU ranks, allocations are counted on the
// thread that makes them, so two ranks of one process each see only their own.
#include <thread>

#include "parallel/rank_memory.h"
#include "test.h"

using namespace wan;

TEST(parallel_rank_memory_peak_is_per_thread) {
  const int64_t MB = 1 << 20;
  int64_t peak_a = 0, live_a = 0, peak_b = 0;
  std::string method;
  auto a = [&] {
    RankMemory m(at::kCPU);
    {
      at::Tensor x = at::empty({MB / 4}, at::kFloat);      // 1 MiB
      at::Tensor y = at::empty({2 * MB / 4}, at::kFloat);  // 2 MiB: 3 MiB live
    }
    at::Tensor z = at::empty({MB / 4}, at::kFloat);  // 1 MiB live at the end
    peak_a = m.peak_bytes();
    live_a = m.current_bytes();
    method = m.method();
  };
  auto b = [&] {
    RankMemory m(at::kCPU);
    at::Tensor big = at::empty({10 * MB / 4}, at::kFloat);
    at::Tensor s = at::matmul(at::ones({256, 256}), at::ones({256, 256}));  // +256 KiB output
    peak_b = m.peak_bytes();
  };
  std::thread ta(a), tb(b);
  ta.join(), tb.join();
  std::printf("     thread A: peak %lld B, live %lld B; thread B: peak %lld B (%s)\n", (long long)peak_a,
              (long long)live_a, (long long)peak_b, method.c_str());
  EXPECT(peak_a >= 3 * MB && peak_a < 3 * MB + 64 * 1024);
  EXPECT(live_a >= MB && live_a < MB + 64 * 1024);
  EXPECT(peak_b >= 10 * MB + 256 * 1024 && peak_b < 11 * MB);
  // Outside a RankMemory nothing is reported (and nothing breaks).
  at::Tensor after = at::empty({MB / 4}, at::kFloat);
  EXPECT(after.numel() == MB / 4);
}

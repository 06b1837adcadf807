// Collectives in flight beside compute (Communicator::start_*), Ulysses pipelined over head groups
// and the ring's log-sum-exp merge: started collectives give the same results whatever the order
// they are waited in; Ulysses in 1, 2 or 4 head groups gives attention over the whole sequence;
// the ring's parts (unequal, one partly padding) merge to attention over the whole sequence, and
// the log-sum-exp that attention_part returns is the scores' own.
#include <cmath>
#include <functional>

#include "tools/bench_overlap.h"
#include "kernels/attention.h"
#include "parallel/ring.h"
#include "parallel/thread_ranks.h"
#include "parallel/ulysses.h"
#include "test.h"

using namespace wan;

namespace {
// fn(rank, communicator) on `n` thread ranks of one Gloo group.
void on_ranks(int n, const std::function<void(int, Communicator&)>& fn) {
  run_thread_ranks(n, "test", std::chrono::seconds(30), [&](RankContext& ctx, Communicator& c) { fn(ctx.rank, c); });
}
}  // namespace

TEST(parallel_collectives_in_flight_finish_in_any_wait_order) {
  const int n = 3;
  std::vector<at::Tensor> ag(n), ex(n), a2a(n);
  std::vector<int64_t> collectives(n);
  run_thread_ranks(n, "test", std::chrono::seconds(30), [&](RankContext& ctx, Communicator& c) {
    const int r = ctx.rank;
    at::Tensor mine = at::full({2}, float(r));
    Pending g = c.start_all_gather(mine, "test gather");
    Pending e = c.start_exchange(mine + 100, (r + 1) % n, (r + n - 1) % n, "test ring pass");
    Pending a = c.start_all_to_all(at::arange(3, at::kFloat) + 10 * r, "test a2a");
    EXPECT(g.active() && e.active() && a.active());
    at::Tensor busy = at::matmul(at::ones({64, 64}), at::ones({64, 64}));  // compute while they travel
    EXPECT(busy[0][0].item<float>() == 64.f);
    a2a[r] = a.wait();  // waited in the reverse order of starting
    ex[r] = e.wait();
    ag[r] = g.wait();
    EXPECT(!g.active());
    EXPECT_ERROR(g.wait(), "no collective in flight");
    collectives[r] = ctx.stats.collectives;
  });
  for (int r = 0; r < n; ++r) {
    EXPECT(at::equal(ag[r], at::stack({at::zeros({2}), at::ones({2}), at::full({2}, 2.f)})));
    EXPECT(at::equal(ex[r], at::full({2}, float(100 + (r + n - 1) % n))));
    EXPECT(at::equal(a2a[r], at::tensor({float(r), float(10 + r), float(20 + r)})));
    EXPECT(collectives[r] == 3);  // each started collective counted once, not again at its wait
  }
}

TEST(ulysses_attention_in_head_groups_is_attention_over_the_whole_sequence) {
  // 2 members, 8 heads (4 each), 5 tokens each; chunks 3 is lowered to 2 (4 heads per member).
  const int n = 2;
  const int64_t H = 8, Ls = 5, d = 8;
  at::manual_seed(5);
  const at::Tensor qkv = at::randn({n, 3, H, Ls, d});  // member r's tokens
  const at::Tensor all = qkv.permute({1, 2, 0, 3, 4}).reshape({3, H, n * Ls, d});  // [3, H, n*Ls, d]
  const at::Tensor want = wan::detail::attention_chunked(all.narrow(0, 0, 1), all.narrow(0, 1, 1), all.narrow(0, 2, 1), 0);
  for (int chunks : {1, 2, 3, 4}) {
    std::vector<at::Tensor> out(n);
    std::vector<int> calls(n);
    on_ranks(n, [&](int r, Communicator& c) {
      out[r] = ulysses_attention(c, qkv[r], chunks, [&](const at::Tensor& x) {  // [3, h, n*Ls, d]
        calls[r]++;
        return wan::detail::attention_chunked(x.narrow(0, 0, 1), x.narrow(0, 1, 1), x.narrow(0, 2, 1), 0);
      });
    });
    for (int r = 0; r < n; ++r) {
      const double e = wantest::rel_l2(out[r], want.narrow(2, r * Ls, Ls));
      if (!(e < 1e-6))
        throw wantest::Failure{"chunks " + std::to_string(chunks) + ", member " + std::to_string(r) + ": rel L2 " +
                               std::to_string(e)};
      EXPECT(calls[r] == (chunks == 3 ? 2 : chunks));
    }
  }
}

TEST(ring_attention_parts_merge_to_the_whole_sequence) {
  // 3 ring members, 5 keys each, 13 real tokens: chunk 2 is 3 keys and 2 padding rows.
  const int n = 3;
  const int64_t h = 2, Lq = 4, Lk = 5, d = 8, tokens = 13;
  at::manual_seed(3);
  const at::Tensor q = at::randn({n, 1, h, Lq, d}), kv = at::randn({n, 2, h, Lk, d}) * 2;
  at::Tensor keys = kv.select(1, 0).permute({1, 0, 2, 3}).reshape({1, h, n * Lk, d}).narrow(2, 0, tokens);
  at::Tensor values = kv.select(1, 1).permute({1, 0, 2, 3}).reshape({1, h, n * Lk, d}).narrow(2, 0, tokens);
  std::vector<at::Tensor> out(n);
  on_ranks(n, [&](int r, Communicator& c) { out[r] = ring_attention(&c, q[r], kv[r], tokens); });
  for (int r = 0; r < n; ++r) {
    const at::Tensor want = wan::detail::attention_chunked(q[r], keys, values, 0);
    const double e = wantest::rel_l2(out[r], want);
    if (!(e < 1e-6)) throw wantest::Failure{"rank " + std::to_string(r) + ": ring vs whole rel L2 " + std::to_string(e)};
  }
  // The log-sum-exp of one part is that of its scaled scores, and the chunked path (3 rows at a
  // time) gives the same output and log-sum-exp as one chunk.
  const AttentionPart part = attention_part(q[0], keys, values);
  const at::Tensor lse = at::logsumexp(at::matmul(q[0], keys.transpose(-2, -1)) / std::sqrt(double(d)), -1);
  EXPECT(part.lse.sizes() == lse.sizes());
  EXPECT(wantest::rel_l2(part.lse, lse) < 1e-6);
  at::Tensor lse3;
  const at::Tensor out3 = wan::detail::attention_chunked(q[0], keys, values, 3, &lse3);
  EXPECT(at::equal(out3, part.out) || wantest::rel_l2(out3, part.out) < 1e-7);
  EXPECT(wantest::rel_l2(lse3, lse) < 1e-6);
}

TEST(bench_overlap_runs_both_schedules_to_the_same_output) {
  for (const char* layout : {"ring", "ulysses"}) {
    const nlohmann::json r = bench_overlap(layout, 2, 64, 4, 16, 1);
    EXPECT(r["layout"] == layout);
    EXPECT(r["rel_l2_between_schedules"].get<double>() < 1e-6);
    for (const char* s : {"overlapped", "sequential"}) {
      const double wall = r[s]["median_s"], comm = r[s]["exposed_comm_s"];
      EXPECT(wall > 0 && comm >= 0 && comm <= wall);
    }
  }
  EXPECT_ERROR(bench_overlap("ulysses", 2, 64, 6, 16, 1), "--heads 6 must be divisible by ranks x 2 head groups (4)");
  EXPECT_ERROR(bench_overlap("ring", 3, 64, 4, 16, 1), "--tokens 64 is not divisible by --ranks 3");
  EXPECT_ERROR(bench_overlap("hybrid", 2, 64, 4, 16, 1), "layout 'hybrid' is not ulysses or ring");
}

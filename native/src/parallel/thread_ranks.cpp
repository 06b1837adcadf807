#include "parallel/thread_ranks.h"

#include <thread>
#include <vector>

#include "common/error.h"

namespace wan {

void run_thread_ranks(int ranks, const std::string& name, std::chrono::milliseconds timeout,
                      const std::function<void(RankContext& ctx, Communicator& c)>& fn) {
  if (ranks < 1) fail(name, ": need at least one rank, got ", ranks);
  auto rdv = Rendezvous::serve("127.0.0.1", 0, timeout);
  std::vector<int> members;
  for (int r = 0; r < ranks; ++r) members.push_back(r);
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        RankContext ctx;
        ctx.rank = r, ctx.world = ranks, ctx.device_name = "cpu:" + std::to_string(r), ctx.timeout = timeout;
        auto store = Rendezvous::join("127.0.0.1", rdv->port(), timeout);  // one store client per thread
        Communicator c(ctx, *store, name, members, name, "127.0.0.1");
        fn(ctx, c);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r)
    if (!errors[r].empty()) fail(name, ": rank ", r, ": ", errors[r]);
}

}  // namespace wan

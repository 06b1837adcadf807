#include "parallel/node_monitor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"

namespace wan {

using Clock = std::chrono::steady_clock;

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
std::string node_key(int k) { return concat("hb/node/", k); }
}  // namespace

struct NodeMonitor::State {
  std::string host;
  uint16_t port = 0;
  int nnodes = 1, node_rank = 0, per_node = 1;
  std::shared_ptr<Rendezvous> store;  // the heartbeat thread's own client: all store I/O is there
  std::mutex mu;
  std::condition_variable exited_cv;
  bool exited = false;
  std::atomic<bool> stop{false};
  std::vector<int64_t> last_count;
  std::vector<Clock::time_point> last_change;
  Clock::time_point last_store_ok;
  std::string store_error;
  int64_t watch_gen = -1;                 // the failed generation whose peers' errors are read
  std::string publish;                    // this node's error, to be written by the heartbeat thread
  std::vector<std::string> peer_failure;  // per node: its published error for watch_gen

  std::string ranks_of(int node) const {
    const int a = node * per_node, b = a + per_node - 1;
    return a == b ? concat("rank ", a) : concat("ranks ", a, "-", b);
  }
};

NodeMonitor::NodeMonitor(const std::string& host, uint16_t port, int nnodes, int node_rank, int ranks_per_node,
                         std::chrono::milliseconds timeout)
    : st_(std::make_shared<State>()) {
  State& s = *st_;
  s.host = host, s.port = port, s.nnodes = nnodes, s.node_rank = node_rank, s.per_node = ranks_per_node;
  // A short store timeout: a stopped node 0 must not hold the heartbeat for the group's timeout.
  s.store = Rendezvous::join(host, port, std::min(timeout, std::chrono::milliseconds(2 * kStale)));
  const auto now = Clock::now();
  s.last_count.assign(nnodes, -1);
  s.last_change.assign(nnodes, now);
  s.peer_failure.assign(nnodes, "");
  s.last_store_ok = now;
  std::thread([st = st_] { beat(st); }).detach();
}

NodeMonitor::~NodeMonitor() {
  st_->stop = true;
  std::unique_lock<std::mutex> lk(st_->mu);
  st_->exited_cv.wait_for(lk, 4 * kInterval, [&] { return st_->exited; });
}

void NodeMonitor::beat(const std::shared_ptr<State>& sp) {
  State& s = *sp;
  Rendezvous& store = *s.store;
  while (!s.stop) {
    try {
      int64_t gen;
      std::string publish;
      {
        std::lock_guard<std::mutex> lk(s.mu);
        gen = s.watch_gen;
        publish.swap(s.publish);
      }
      if (!publish.empty()) store.set(concat("fail/", gen, "/node/", s.node_rank), publish);
      store.add(node_key(s.node_rank), 1);
      std::vector<int64_t> counts(s.nnodes);
      std::vector<std::string> failed(s.nnodes);
      for (int k = 0; k < s.nnodes; ++k) {
        if (k == s.node_rank) continue;
        counts[k] = store.add(node_key(k), 0);
        const std::string key = concat("fail/", gen, "/node/", k);
        if (gen >= 0 && store.check(key)) failed[k] = store.get(key);
      }
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lk(s.mu);
      s.last_store_ok = now;
      s.store_error.clear();
      for (int k = 0; k < s.nnodes; ++k) {
        if (counts[k] != s.last_count[k]) s.last_count[k] = counts[k], s.last_change[k] = now;
        if (gen == s.watch_gen && !failed[k].empty()) s.peer_failure[k] = failed[k];
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(s.mu);
      if (s.store_error.empty()) log_warn("rendezvous store at ", s.host, ":", s.port, " stopped answering: ", e.what());
      s.store_error = e.what();
    }
    for (int i = 0; i < 10 && !s.stop; ++i) std::this_thread::sleep_for(kInterval / 10);
  }
  std::lock_guard<std::mutex> lk(s.mu);
  s.exited = true;
  s.exited_cv.notify_all();
}

// Only reads what the heartbeat thread found: a store that stopped answering cannot block this.
NodeMonitor::Verdict NodeMonitor::after_failure(int64_t gen, const std::string& error, std::chrono::milliseconds wait) {
  State& s = *st_;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    s.watch_gen = gen;
    s.publish = concat("node ", s.node_rank, ": ", error);
    s.peer_failure.assign(s.nnodes, "");
  }
  const auto deadline = Clock::now() + wait;
  for (;;) {
    Verdict v;
    bool all_known = true;
    {
      std::lock_guard<std::mutex> lk(s.mu);
      const auto now = Clock::now();
      const bool store_gone = !s.store_error.empty() || now - s.last_store_ok > kStale;
      for (int k = 0; k < s.nnodes; ++k) {
        if (k == s.node_rank) continue;
        if (!s.peer_failure[k].empty()) {
          v.peers += (v.peers.empty() ? "" : "; ") + s.peer_failure[k];
        } else if (k == 0 && store_gone) {
          v.dead += concat(v.dead.empty() ? "" : "; ", "node 0 (", s.ranks_of(0), ", serving the rendezvous store at ", s.host,
                           ":", s.port, ") stopped responding (",
                           s.store_error.empty() ? concat("no answer for ", std::round(seconds(now - s.last_store_ok) * 10) / 10, " s")
                                                 : s.store_error,
                           ": it died or is stopped)");
        } else if (store_gone) {
          // the others cannot be asked
        } else if (now - s.last_change[k] > kStale) {
          v.dead += concat(v.dead.empty() ? "" : "; ", "node ", k, " (", s.ranks_of(k), ") stopped responding (no heartbeat for ",
                           std::round(seconds(now - s.last_change[k]) * 10) / 10, " s: it died or is stopped)");
        } else {
          all_known = false;
        }
      }
    }
    if (all_known || Clock::now() > deadline) return v;
    std::this_thread::sleep_for(kInterval / 5);
  }
}

}  // namespace wan

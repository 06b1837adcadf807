#include "parallel/node_monitor.h"

#include <cmath>

#include "common/log.h"

namespace wan {

using Clock = std::chrono::steady_clock;

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
std::string node_key(int k) { return concat("hb/node/", k); }
}  // namespace

NodeMonitor::NodeMonitor(const std::string& host, uint16_t port, int nnodes, int node_rank, int ranks_per_node,
                         std::chrono::milliseconds timeout)
    : host_(host), port_(port), nnodes_(nnodes), node_rank_(node_rank), per_node_(ranks_per_node) {
  beat_store_ = Rendezvous::join(host, port, timeout);
  query_store_ = Rendezvous::join(host, port, timeout);
  const auto now = Clock::now();
  last_count_.assign(nnodes, -1);
  last_change_.assign(nnodes, now);
  last_store_ok_ = now;
  thread_ = std::thread([this] { beat(); });
}

NodeMonitor::~NodeMonitor() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string NodeMonitor::ranks_of(int node) const {
  const int a = node * per_node_, b = a + per_node_ - 1;
  return a == b ? concat("rank ", a) : concat("ranks ", a, "-", b);
}

void NodeMonitor::beat() {
  Rendezvous& store = *beat_store_;
  while (!stop_) {
    try {
      store.add(node_key(node_rank_), 1);
      std::vector<int64_t> counts(nnodes_);
      for (int k = 0; k < nnodes_; ++k) counts[k] = k == node_rank_ ? 0 : store.add(node_key(k), 0);
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lk(mu_);
      last_store_ok_ = now;
      for (int k = 0; k < nnodes_; ++k)
        if (counts[k] != last_count_[k]) last_count_[k] = counts[k], last_change_[k] = now;
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(mu_);
      if (store_error_.empty()) {
        store_error_ = e.what();
        log_warn("rendezvous store at ", host_, ":", port_, " stopped answering: ", e.what());
      }
      if (node_rank_ != 0) return;  // the store is gone for good
    }
    for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(kInterval / 10);
  }
}

NodeMonitor::Verdict NodeMonitor::after_failure(int64_t gen, const std::string& error, std::chrono::milliseconds wait) {
  Rendezvous& store = *query_store_;
  const std::string mine = concat("fail/", gen, "/node/", node_rank_);
  try {
    const std::string msg = concat("node ", node_rank_, ": ", error);
    store.set(mine, msg);
  } catch (const std::exception&) {
    // the store is gone: the verdict below says so
  }
  const auto deadline = Clock::now() + wait;
  for (;;) {
    Verdict v;
    bool all_known = true;
    const auto now = Clock::now();
    std::vector<bool> published(nnodes_, false);
    bool store_ok = true;
    for (int k = 0; k < nnodes_ && store_ok; ++k) {
      if (k == node_rank_) continue;
      const std::string key = concat("fail/", gen, "/node/", k);
      try {
        if (store.check(key)) {
          v.peers += (v.peers.empty() ? "" : "; ") + store.get(key);
          published[k] = true;
        }
      } catch (const std::exception&) {
        store_ok = false;
      }
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      const bool store_gone = !store_ok || !store_error_.empty() || now - last_store_ok_ > kStale;
      for (int k = 0; k < nnodes_; ++k) {
        if (k == node_rank_ || published[k]) continue;
        if (k == 0 && store_gone) {
          v.dead += concat(v.dead.empty() ? "" : "; ", "node 0 (", ranks_of(0), ", serving the rendezvous store at ", host_,
                           ":", port_, ") stopped responding (",
                           store_error_.empty() ? concat("no answer for ", seconds(now - last_store_ok_), " s")
                                                : store_error_,
                           ": it died or is stopped)");
        } else if (store_gone) {
          // the others cannot be asked
        } else if (now - last_change_[k] > kStale) {
          v.dead += concat(v.dead.empty() ? "" : "; ", "node ", k, " (", ranks_of(k), ") stopped responding (no heartbeat for ",
                           std::round(seconds(now - last_change_[k]) * 10) / 10, " s: it died or is stopped)");
        } else {
          all_known = false;
        }
      }
    }
    if (all_known || Clock::now() > deadline) return v;
    std::this_thread::sleep_for(kInterval);
  }
}

}  // namespace wan

#include "parallel/device_group.h"

#include <unistd.h>

#include <algorithm>

#include "common/error.h"

namespace wan {

using Clock = std::chrono::steady_clock;

namespace {
// This host's name, for Gloo to bind to when ranks span several machines.
std::string c10d_host() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0 || !name[0]) return "127.0.0.1";
  return name;
}
}  // namespace

DeviceGroup::DeviceGroup(const DeviceGroupOptions& o) : opts_(o) {
  const int local = int(o.devices.size());
  const ParallelLayout& L = o.layout;
  if (local < 1) fail("device group: no devices");
  if (o.nnodes < 1 || o.node_rank < 0 || o.node_rank >= o.nnodes)
    fail("device group: node rank ", o.node_rank, " is not in [0, ", o.nnodes, ")");
  const int n = local * o.nnodes;
  if (L.ulysses * L.ring * L.cfg != n)
    fail("device group: ulysses (", L.ulysses, ") x ring (", L.ring, ") x cfg (", L.cfg, ") != ", n, " ranks");
  entered_.reset(new std::atomic<int64_t>[n]);
  for (int i = 0; i < n; ++i) entered_[i] = 0;
  if (o.nnodes > 1) {
    // Node 0 serves the store; the others join it (waiting up to the timeout for node 0).
    rdv_ = o.node_rank == 0 ? Rendezvous::serve(o.rendezvous_host, uint16_t(o.rendezvous_port), o.timeout)
                            : Rendezvous::join(o.rendezvous_host, uint16_t(o.rendezvous_port), o.timeout);
  } else if (n > 1) {
    rdv_ = Rendezvous::serve("127.0.0.1", 0, o.timeout);
  }
  const int sp = L.sequence_parallel();
  for (int i = 0; i < local; ++i) {
    const int g = o.node_rank * local + i;
    auto s = std::make_unique<RankState>();
    const DeviceSpec& d = o.devices[i];
    s->ctx.rank = g;
    s->ctx.world = n;
    s->ctx.device = d.type == "cuda" ? at::Device(at::kCUDA, d.index) : at::Device(at::kCPU);
    s->ctx.device_name = d.type + ":" + std::to_string(d.index);
    s->ctx.timeout = o.timeout;
    s->ctx.abort = &abort_;
    s->ctx.entered = o.nnodes == 1 ? entered_.get() : nullptr;  // other processes' progress is not visible
    s->layout = L;
    s->cfg_index = g / sp;
    s->sp_rank = g % sp;
    s->ring_index = s->sp_rank / L.ulysses;
    s->ulysses_index = s->sp_rank % L.ulysses;
    ranks_.push_back(std::move(s));
  }
  errors_.assign(local, "");
  error_time_.assign(local, 0);
  for (int i = 0; i < local; ++i) threads_.emplace_back([this, i] { worker(i); });
  std::vector<std::string> errs;
  dispatch([this](RankState& s) { build_groups(s); }, errs);
  for (size_t i = 0; i < errs.size(); ++i)
    if (!errs[i].empty()) {
      const std::string e = errs[i];
      std::vector<std::string> ignored;
      dispatch([this](RankState& s) { drop_groups(s); }, ignored);
      stop_threads();
      throw Error(concat("device group: rank ", first_rank() + int(i), " could not join: ", e));
    }
}

DeviceGroup::~DeviceGroup() { stop_threads(); }

void DeviceGroup::stop_threads() {
  if (threads_.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void DeviceGroup::set_timeout(std::chrono::milliseconds t) {
  std::lock_guard<std::mutex> lk(run_mu_);
  opts_.timeout = t;
  for (auto& r : ranks_) r->ctx.timeout = t;
}

void DeviceGroup::set_fault(const FaultInjection& f) {
  std::lock_guard<std::mutex> lk(run_mu_);
  for (auto& r : ranks_) r->fault = f;
}

void DeviceGroup::build_groups(RankState& s) {
  const int n = world(), sp = s.layout.sequence_parallel(), u = s.layout.ulysses;
  if (n == 1) return;
  const std::string key = "gen" + std::to_string(generation_);
  // The address peers reach this process's Gloo at: loopback for one node (and loopback tests).
  const std::string host = opts_.nnodes == 1 ? "127.0.0.1" : opts_.rendezvous_host == "127.0.0.1" || opts_.rendezvous_host == "localhost" ? "127.0.0.1" : c10d_host();
  if (!s.store) s.store = Rendezvous::join(rdv_->host(), rdv_->port(), opts_.timeout);
  const Rendezvous& rdv = *s.store;
  const int base = s.cfg_index * sp;
  std::vector<int> all(n), spr(sp), ul, rg, cf;
  for (int i = 0; i < n; ++i) all[i] = i;
  for (int i = 0; i < sp; ++i) spr[i] = base + i;
  for (int i = 0; i < u; ++i) ul.push_back(base + s.ring_index * u + i);
  for (int j = 0; j < s.layout.ring; ++j) rg.push_back(base + j * u + s.ulysses_index);
  for (int c = 0; c < s.layout.cfg; ++c) cf.push_back(c * sp + s.sp_rank);
  s.world = std::make_unique<Communicator>(s.ctx, rdv, "world", all, key, host);
  if (sp > 1) s.sp = std::make_unique<Communicator>(s.ctx, rdv, "sp", spr, key, host);
  if (u > 1) s.ulysses = std::make_unique<Communicator>(s.ctx, rdv, "ulysses", ul, key, host);
  if (s.layout.ring > 1) s.ring = std::make_unique<Communicator>(s.ctx, rdv, "ring", rg, key, host);
  if (s.layout.cfg > 1) s.cfg = std::make_unique<Communicator>(s.ctx, rdv, "cfg", cf, key, host);
}

void DeviceGroup::drop_groups(RankState& s) {
  s.world.reset();
  s.sp.reset();
  s.ulysses.reset();
  s.ring.reset();
  s.cfg.reset();
}

void DeviceGroup::worker(int local) {
  const int rank = local;
  int64_t seen = 0;
  RankState& s = *ranks_[rank];
  for (;;) {
    const std::function<void(RankState&)>* task;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || task_id_ != seen; });
      if (stop_) break;
      seen = task_id_;
      task = task_;
    }
    std::string err;
    try {
      (*task)(s);
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "unknown exception";
    }
    if (!err.empty()) {
      abort_ = true;
      // Close this rank's groups now: peers blocked on it see the connection go and fail fast.
      drop_groups(s);
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      errors_[rank] = err;
      error_time_[rank] = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
      if (--pending_ == 0) cv_.notify_all();
    }
  }
  drop_groups(s);
}

void DeviceGroup::dispatch(const std::function<void(RankState&)>& fn, std::vector<std::string>& errors) {
  std::unique_lock<std::mutex> lk(mu_);
  task_ = &fn;
  pending_ = size();
  ++task_id_;
  cv_.notify_all();
  cv_.wait(lk, [&] { return pending_ == 0; });
  task_ = nullptr;
  errors = errors_;
}

void DeviceGroup::run(const std::function<void(RankState&)>& fn) {
  std::lock_guard<std::mutex> run_lk(run_mu_);
  abort_ = false;
  for (int i = 0; i < world(); ++i) entered_[i] = 0;
  for (auto& r : ranks_) r->ctx.stats = CommStats{}, r->ctx.where.clear();
  std::vector<std::string> errs;
  dispatch(fn, errs);
  // The root cause: the most specific failure, the earliest among equals. A rank's own error (a
  // throw, a device check) beats a timeout that names the rank that never arrived, which beats a
  // transport timeout (several ranks' transports time out together, naming only their peers),
  // which beats another rank's abort.
  auto rank_of = [](const std::string& e) {
    if (e.find("aborted: another rank failed") != std::string::npos) return 3;
    if (e.find("waiting for rank") != std::string::npos) return 1;
    if (e.find("timed out") != std::string::npos || e.find("Timed out") != std::string::npos) return 2;
    return 0;
  };
  int first = -1;
  for (int i = 0; i < size(); ++i) {
    if (errs[i].empty()) continue;
    if (first < 0 || rank_of(errs[i]) < rank_of(errs[first]) ||
        (rank_of(errs[i]) == rank_of(errs[first]) && error_time_[i] < error_time_[first]))
      first = i;
  }
  if (first < 0) return;
  // Rebuild every rank's groups under a new generation of store keys.
  std::string msg = errs[first];
  int failed = 0;
  for (auto& e : errs) failed += !e.empty();
  ++generation_;
  abort_ = false;
  for (int i = 0; i < world(); ++i) entered_[i] = 0;
  std::vector<std::string> rebuild_errs;
  dispatch([this](RankState& s) { drop_groups(s); build_groups(s); }, rebuild_errs);
  for (auto& e : rebuild_errs)
    if (!e.empty()) msg += " (and rebuilding the device group failed: " + e + ")";
  if (failed > 1) msg += concat(" [", failed, " of ", size(), " ranks failed]");
  throw Error(msg);
}

std::vector<CommStats> DeviceGroup::stats() const {
  std::vector<CommStats> s;
  for (auto& r : ranks_) s.push_back(r->ctx.stats);
  return s;
}

}  // namespace wan

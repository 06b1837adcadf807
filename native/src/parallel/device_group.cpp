#include "parallel/device_group.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/cuda.h"
#include "common/error.h"
#include "common/log.h"
#include "parallel/node_monitor.h"

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
  LogScope log_scope(o.logger);
  log_info("device group: ", n, " ranks (", local, " on this node, node ", o.node_rank, " of ", o.nnodes, "), ulysses ",
           L.ulysses, " x ring ", L.ring, " x cfg ", L.cfg, ", timeout ", o.timeout.count() / 1000.0, " s, transport ",
           transport_name(o.transport), shares_device(o.devices) ? " (ranks share one GPU: a test mode)" : "");
  if (o.nnodes > 1) {
    // Node 0 serves the store; the others join it (waiting up to the timeout for node 0).
    log_info("rendezvous: ", o.node_rank == 0 ? "serving" : "joining", " the TCPStore at ", o.rendezvous_host, ":",
             o.rendezvous_port);
    rdv_ = o.store                ? o.store
           : o.node_rank == 0 ? Rendezvous::serve(o.rendezvous_host, uint16_t(o.rendezvous_port), o.timeout)
                              : Rendezvous::join(o.rendezvous_host, uint16_t(o.rendezvous_port), o.timeout);
    monitor_ = std::make_unique<NodeMonitor>(o.rendezvous_host, rdv_->port(), o.nnodes, o.node_rank, local, o.timeout);
  } else if (n > 1) {
    rdv_ = Rendezvous::serve("127.0.0.1", 0, o.timeout);
    log_info("rendezvous: TCPStore on 127.0.0.1:", rdv_->port());
  }
  check_cost_s_ = check_tensor_cost_s();
  const char* stage_env = std::getenv("WANLAB_STAGE_HOST");  // the test switch (DeviceGroupOptions::stage_host)
  const bool stage_host = o.stage_host || (stage_env && std::strcmp(stage_env, "1") == 0);
  const int sp = L.sequence_parallel();
  for (int i = 0; i < local; ++i) {
    const int g = o.node_rank * local + i;
    auto s = std::make_unique<RankState>();
    const DeviceSpec& d = o.devices[i];
    s->ctx.rank = g;
    s->ctx.world = n;
    s->ctx.device = aten_device(d);
    s->ctx.device_name = d.type + ":" + std::to_string(d.index);
    s->ctx.timeout = o.timeout;
    s->ctx.abort = &abort_;
    s->ctx.entered = o.nnodes == 1 ? entered_.get() : nullptr;  // other processes' progress is not visible
    s->ctx.transport = o.transport;
    s->ctx.stage_host = stage_host;
    s->layout = L;
    s->cfg_index = g / sp;
    s->sp_rank = g % sp;
    s->ring_index = s->sp_rank / L.ulysses;
    s->ulysses_index = s->sp_rank % L.ulysses;
    ranks_.push_back(std::move(s));
  }
  errors_.assign(local, "");
  error_kind_.assign(local, 0);
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
      log_error("device group: rank ", first_rank() + int(i), " could not join: ", e);
      throw Error(concat("device group: rank ", first_rank() + int(i), " could not join: ", e));
    }
  log_info("device group: ready (", n, " ranks)");
}

DeviceGroup::~DeviceGroup() {
  stop_threads();
  monitor_.reset();
}

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

void DeviceGroup::set_step_hook(StepHook hook) {
  std::lock_guard<std::mutex> lk(run_mu_);
  for (auto& r : ranks_) r->step_hook = hook;
}

void DeviceGroup::set_attention_hook(AttentionHook hook) {
  std::lock_guard<std::mutex> lk(run_mu_);
  for (auto& r : ranks_) r->attention_hook = hook;
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
  log_debug("joining the process groups of generation ", generation_, " (Gloo on ", host, ")");
  s.world = std::make_unique<Communicator>(s.ctx, rdv, "world", all, key, host);
  if (sp > 1) s.sp = std::make_unique<Communicator>(s.ctx, rdv, "sp", spr, key, host);
  if (u > 1) s.ulysses = std::make_unique<Communicator>(s.ctx, rdv, "ulysses", ul, key, host);
  if (s.layout.ring > 1) s.ring = std::make_unique<Communicator>(s.ctx, rdv, "ring", rg, key, host);
  if (s.layout.cfg > 1) s.cfg = std::make_unique<Communicator>(s.ctx, rdv, "cfg", cf, key, host);
  log_info("joined ", s.world->name(), s.sp ? " " + s.sp->name() : "", s.ulysses ? " " + s.ulysses->name() : "",
           s.ring ? " " + s.ring->name() : "", s.cfg ? " " + s.cfg->name() : "", " (generation ", generation_, ")");
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
  LogScope log_scope(opts_.logger, s.ctx.rank, s.ctx.device_name);
  RankStreamScope stream_scope(s.ctx.device);  // CUDA: this rank's device and own stream
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
    int kind = 0;
    try {
      (*task)(s);
      device_synchronize(s.ctx.device);  // what the rank queued is done before the caller reads it
    } catch (const CommError& e) {
      err = e.what();
      kind = e.kind;
    } catch (const RankCancelled& e) {
      err = e.what();
      kind = -1;
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "unknown exception";
    }
    if (!err.empty()) {
      if (kind == CommError::Aborted || kind < 0) log_info(err);  // another rank's failure, a cancel
      else if (kind != 0) log_warn(err);                           // a collective that failed because of a peer
      else log_error(err);
      if (kind < 0) kind = 0;
      abort_ = true;
      // Close this rank's groups now: peers blocked on it see the connection go and fail fast.
      drop_groups(s);
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      errors_[rank] = err;
      error_kind_[rank] = kind;
      error_time_[rank] = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
      if (--pending_ == 0) cv_.notify_all();
    }
  }
  drop_groups(s);
}

void DeviceGroup::dispatch(const std::function<void(RankState&)>& fn, std::vector<std::string>& errors,
                           std::vector<int>* kinds) {
  std::unique_lock<std::mutex> lk(mu_);
  task_ = &fn;
  pending_ = size();
  ++task_id_;
  cv_.notify_all();
  cv_.wait(lk, [&] { return pending_ == 0; });
  task_ = nullptr;
  errors = errors_;
  if (kinds) *kinds = error_kind_;
}

void DeviceGroup::run(const std::function<void(RankState&)>& fn) {
  std::lock_guard<std::mutex> run_lk(run_mu_);
  LogScope log_scope(opts_.logger);
  if (!broken_.empty()) throw Error(concat("device group is unusable since an earlier failure: ", broken_));
  abort_ = false;
  for (int i = 0; i < world(); ++i) entered_[i] = 0;
  for (auto& r : ranks_) {
    r->ctx.stats = CommStats{}, r->ctx.where.clear();
    r->step_s.clear(), r->step_comm_s.clear(), r->step_bytes.clear();
    r->peak_bytes = -1, r->peak_method.clear();
    r->request = requests_ + 1;
  }
  std::vector<std::string> errs;
  std::vector<int> kinds;
  ++requests_;
  // The ranks run on streams of their own: what this thread queued on their devices (the text
  // embeddings, a CUDA VAE's latents) must be done first.
  for (auto& r : ranks_) device_synchronize(r->ctx.device);
  dispatch(fn, errs, &kinds);
  // The root cause: the most specific failure, the earliest among equals. A rank's own error (a
  // throw, a device check) beats a timeout that names the rank that never arrived, which beats a
  // transport failure or timeout (several ranks' transports fail together, naming only their
  // peers), which beats another rank's abort.
  int first = -1;
  for (int i = 0; i < size(); ++i) {
    if (errs[i].empty()) continue;
    if (first < 0 || kinds[i] < kinds[first] || (kinds[i] == kinds[first] && error_time_[i] < error_time_[first]))
      first = i;
  }
  if (first < 0) return;
  std::string msg = errs[first];
  int failed = 0;
  for (auto& e : errs) failed += !e.empty();
  if (failed > 1) msg += concat(" [", failed, " of ", size(), " ranks of node ", opts_.node_rank, " failed]");
  if (monitor_) {
    // Across processes: which node stopped responding, or what failed on the others.
    NodeMonitor::Verdict v = monitor_->after_failure(generation_, msg, std::min(opts_.timeout, NodeMonitor::kStale * 2));
    if (!v.dead.empty()) {
      broken_ = v.dead + "; here: " + msg;
      log_error(broken_);
      throw Error(broken_);
    }
    if (!v.peers.empty() && kinds[first] != 0) msg = v.peers + "; here: " + msg;
  }
  // Rebuild every rank's groups under a new generation of store keys.
  ++generation_;
  abort_ = false;
  for (int i = 0; i < world(); ++i) entered_[i] = 0;
  std::vector<std::string> rebuild_errs;
  dispatch([this](RankState& s) { drop_groups(s); build_groups(s); }, rebuild_errs);
  for (auto& e : rebuild_errs)
    if (!e.empty()) msg += " (and rebuilding the device group failed: " + e + ")";
  log_info("request failed: ", msg);
  throw Error(msg);
}

std::vector<RankStats> DeviceGroup::stats() const {
  std::vector<RankStats> out;
  for (auto& r : ranks_) {
    RankStats s;
    s.rank = r->ctx.rank;
    s.device = r->ctx.device_name;
    s.comm = r->ctx.stats;
    s.step_s = r->step_s, s.step_comm_s = r->step_comm_s, s.step_bytes = r->step_bytes;
    s.peak_bytes = r->peak_bytes, s.peak_method = r->peak_method;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace wan

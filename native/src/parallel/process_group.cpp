#include "parallel/process_group.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "parallel/c10d_compat.h"

namespace wan {

namespace cc = c10d_compat;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

void check_tensor(RankContext& ctx, const at::Tensor& t, const char* name, at::ScalarType dtype) {
  ctx.stats.checks++;
  if (!t.defined()) fail("rank ", ctx.rank, " (", ctx.device_name, "): tensor ", name, " is undefined");
  if (t.device() != ctx.device)
    fail("rank ", ctx.rank, " (", ctx.device_name, "): tensor ", name, " is on ", t.device().str(),
         " but the rank's device is ", ctx.device.str(), ctx.where.empty() ? "" : " at ", ctx.where);
  if (t.scalar_type() != dtype)
    fail("rank ", ctx.rank, " (", ctx.device_name, "): tensor ", name, " has dtype ", t.scalar_type(),
         " but ", dtype, " is expected", ctx.where.empty() ? "" : " at ", ctx.where);
}

double check_tensor_cost_s(int reps) {
  RankContext ctx;
  const at::Tensor t = at::zeros({4, 4});
  std::vector<double> per;
  const int n = 20000;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) check_tensor(ctx, t, "t", at::kFloat);
    per.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / n);
  }
  std::sort(per.begin(), per.end());
  return per[per.size() / 2];
}

// ---- rendezvous

struct Rendezvous::Impl {
  c10::intrusive_ptr<cc::Store> store;
};

std::shared_ptr<Rendezvous> Rendezvous::open(const std::string& host, uint16_t port, bool server,
                                             std::chrono::milliseconds timeout) {
  std::shared_ptr<Rendezvous> r(new Rendezvous());
  r->impl_ = std::make_unique<Impl>();
  try {
    r->impl_->store = cc::tcp_store(host, port, server, timeout);
  } catch (const std::exception& e) {
    fail("rendezvous: cannot ", server ? "serve a TCPStore on " : "join the TCPStore at ", host, ":", port, ": ",
         e.what());
  }
  r->host_ = host;
  r->port_ = server ? cc::tcp_store_port(r->impl_->store) : port;  // served on port 0: the port it took
  return r;
}

std::shared_ptr<Rendezvous> Rendezvous::serve(const std::string& host, uint16_t port,
                                              std::chrono::milliseconds timeout) {
  return open(host, port, true, timeout);
}

std::shared_ptr<Rendezvous> Rendezvous::join(const std::string& host, uint16_t port,
                                             std::chrono::milliseconds timeout) {
  return open(host, port, false, timeout);
}

Rendezvous::~Rendezvous() = default;

int64_t Rendezvous::add(const std::string& key, int64_t v) { return impl_->store->add(key, v); }
void Rendezvous::set(const std::string& key, const std::string& value) {
  impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}
bool Rendezvous::check(const std::string& key) { return impl_->store->check({key}); }
std::string Rendezvous::get(const std::string& key) {
  const std::vector<uint8_t> b = impl_->store->get(key);
  return std::string(b.begin(), b.end());
}

// ---- communicator

namespace {
// Buffers a backend writes into from its own threads must be normal tensors: in-place updates of
// inference tensors are refused outside InferenceMode, and the backend's threads are outside it.
at::Tensor comm_buffer(at::IntArrayRef shape, const at::TensorOptions& o) {
  c10::InferenceMode off(false);
  return at::empty(shape, o);
}

// A host buffer of a staged transfer: page-locked when the rank is on a CUDA device, so the copies
// to and from it run at full rate and the copy back to the device can be asynchronous.
at::Tensor host_buffer(at::IntArrayRef shape, at::ScalarType dtype, const at::Device& rank_device) {
  return comm_buffer(shape, at::TensorOptions().dtype(dtype).pinned_memory(rank_device.is_cuda()));
}

// What Gloo is handed: a bfloat16 tensor viewed as float16, bit for bit. These collectives only
// move bytes, and Gloo's type switch (libtorch 1.13's at least) refuses bfloat16.
at::Tensor gloo_view(const at::Tensor& t) {
  if (t.scalar_type() != at::kBFloat16) return t;
  c10::InferenceMode off(false);
  return t.view(at::kHalf);
}
}  // namespace

bool nccl_built() { return cc::kHaveNccl; }

struct Communicator::Impl {
  cc::GroupPtr group;
};

namespace {
std::string ranks_str(const std::vector<int>& r) {
  std::string s = "[";
  for (size_t i = 0; i < r.size(); ++i) s += (i ? "," : "") + std::to_string(r[i]);
  return s + "]";
}
}  // namespace

Communicator::Communicator(RankContext& ctx, const Rendezvous& rdv, const std::string& name,
                           const std::vector<int>& ranks, const std::string& key, const std::string& gloo_host)
    : ctx_(ctx), name_(name + ranks_str(ranks)), ranks_(ranks) {
  auto it = std::find(ranks.begin(), ranks.end(), ctx.rank);
  if (it == ranks.end()) fail("rank ", ctx.rank, " is not a member of group ", name_);
  rank_ = int(it - ranks.begin());
  impl_ = std::make_unique<Impl>();
  // NCCL between CUDA ranks where the build has it (unless Gloo was asked for); Gloo otherwise,
  // staged through host buffers on a rank that is not on the CPU (or when a test forces it).
  const bool nccl_possible = ctx.device.is_cuda() && nccl_built();
  if (ctx.transport == Transport::Nccl && !nccl_possible)
    fail("rank ", ctx.rank, " (", ctx.device_name, "): group ", name_, ": transport nccl needs a CUDA rank and a ",
         "libtorch with NCCL", nccl_built() ? "" : " (this build has none)");
  nccl_ = nccl_possible && ctx.transport != Transport::Gloo;
  staged_ = !nccl_ && (ctx.stage_host || !ctx.device.is_cpu());
  auto store = cc::prefix_store(key + "/" + name_, rdv.impl().store);
  try {
#ifdef USE_C10D_NCCL
    if (nccl_) {
      impl_->group = cc::nccl_group(store, rank_, size(), ctx.timeout);
      return;
    }
#endif
    impl_->group = cc::gloo_group(store, rank_, size(), gloo_host, ctx.timeout);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank ", ctx.rank, " (", ctx.device_name, "): cannot create process group ", name_, ": ", e.what());
  }
}

Communicator::~Communicator() = default;

void Communicator::fail_op(const char* op, const char* what, const std::string& why, int kind) const {
  const std::string m = concat("rank ", ctx_.rank, " (", ctx_.device_name, "): ", op, " '", what, "' in group ", name_,
                               ctx_.where.empty() ? "" : " at ", ctx_.where, " ", why);
  if (kind == 0) throw Error(m);
  throw CommError(m, CommError::Kind(kind));
}

void Communicator::enter(const char* op, const char* what, const at::Tensor* t) {
  if (ctx_.abort && ctx_.abort->load()) fail_op(op, what, "aborted: another rank failed", CommError::Aborted);
  if (t) {
    check_tensor(ctx_, *t, what, t->scalar_type());
    ctx_.stats.bytes_sent += int64_t(t->numel()) * int64_t(t->element_size());
  }
  ctx_.stats.collectives++;
  if (ctx_.entered) ctx_.entered[ctx_.rank].fetch_add(1);
}

struct Pending::Impl {
  Communicator* c = nullptr;
  const char* op = "";
  const char* what = "";
  Clock::time_point started;
  double start_s = 0;        // blocked while starting it
  cc::WorkPtr work, recv;    // recv set: a send/recv pair (work = the send)
  int to = -1, from = -1;    // send/recv: group members
  std::vector<at::Tensor> in;                // what the backend reads
  std::vector<std::vector<at::Tensor>> outs;  // what it writes (all_gather: one view per member)
  at::Tensor out;
};

at::Tensor Pending::wait() {
  if (!impl_) fail("Pending::wait: no collective in flight (never started or already waited)");
  const std::shared_ptr<Impl> p = std::move(impl_);
  const auto t0 = Clock::now();
  if (p->recv) p->c->wait_p2p(&p->work, &p->recv, p->to, p->from, p->what);
  else p->c->wait(&p->work, p->op, p->what);
  const at::Tensor out = p->c->to_rank(p->out);  // staged: back to the rank's device
  p->c->done(p->op, p->what, p->start_s + seconds_since(t0), p->started);
  return out;
}

at::Tensor Communicator::send_buffer(const at::Tensor& x) {
  if (!staged_) return x.contiguous();
  at::Tensor h = host_buffer(x.sizes(), x.scalar_type(), ctx_.device);
  c10::InferenceMode off(false);
  h.copy_(x);  // blocking: from a GPU it waits for the rank's stream, so x is computed
  return h;
}

at::Tensor Communicator::result_buffer(at::IntArrayRef shape, const at::TensorOptions& o) {
  return staged_ ? host_buffer(shape, o.dtype().toScalarType(), ctx_.device) : comm_buffer(shape, o);
}

at::Tensor Communicator::to_rank(const at::Tensor& result) {
  if (!staged_) return result;
  at::Tensor d = comm_buffer(result.sizes(), result.options().device(ctx_.device).pinned_memory(false));
  c10::InferenceMode off(false);
  // Queued on the rank's stream. From pinned memory PyTorch's host allocator records the copy, so
  // `result` is not reused before the copy has run, even when it is freed before that.
  d.copy_(result, /*non_blocking=*/true);
  return d;
}

std::string Communicator::missing_ranks(const std::vector<int>& members) const {
  std::string who;
  if (ctx_.entered) {
    const int64_t mine = ctx_.entered[ctx_.rank].load();
    for (int r : members)
      if (r != ctx_.rank && ctx_.entered[r].load() < mine)
        who += (who.empty() ? "" : ", ") + std::to_string(r);
  }
  return who.empty() ? std::string(" (a peer rank stalled or died)")
                     : concat(" waiting for rank ", who, " (it never reached this collective)");
}

void Communicator::wait(void* work_p, const char* op, const char* what) {
  cc::WorkPtr& work = *static_cast<cc::WorkPtr*>(work_p);
  const auto deadline = Clock::now() + ctx_.timeout;
  auto missing = [&] { return missing_ranks(ranks_); };
  auto timeout_kind = [&](const std::string& m) {
    return m.find("waiting for rank") != std::string::npos ? CommError::NamedTimeout : CommError::Transport;
  };
  int spins = 0;
  while (!work->isCompleted()) {
    if (ctx_.abort && ctx_.abort->load()) fail_op(op, what, "aborted: another rank failed", CommError::Aborted);
    if (Clock::now() > deadline) {
      const std::string m = missing();
      fail_op(op, what, concat("timed out after ", ctx_.timeout.count() / 1000.0, " s", m), timeout_kind(m));
    }
    if (++spins < 200) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  try {
    work->wait();
  } catch (const std::exception& e) {
    // Gloo's own timeout (the same length) can fire first: name the missing ranks all the same.
    const std::string m = e.what();
    if (m.find("Timed out") != std::string::npos) {
      const std::string who = missing();
      fail_op(op, what, concat("timed out after ", ctx_.timeout.count() / 1000.0, " s", who, " [", m, "]"),
              timeout_kind(who));
    }
    fail_op(op, what, concat("failed: ", m), CommError::Transport);
  }
}

void Communicator::wait_p2p(void* send_p, void* recv_p, int to, int from, const char* what) {
  cc::WorkPtr& ws = *static_cast<cc::WorkPtr*>(send_p);
  cc::WorkPtr& wr = *static_cast<cc::WorkPtr*>(recv_p);
  try {
    wr->wait(ctx_.timeout);
    ws->wait(ctx_.timeout);
  } catch (const std::exception& e) {
    const std::string m = e.what();
    const std::string with = concat("with ranks ", ranks_[to], " (send) and ", ranks_[from], " (recv) ");
    if (m.find("Timed out") == std::string::npos) fail_op("send/recv", what, concat(with, "failed: ", m), CommError::Transport);
    const std::string who = to == from ? missing_ranks({ranks_[to]}) : missing_ranks({ranks_[to], ranks_[from]});
    fail_op("send/recv", what, concat(with, "timed out after ", ctx_.timeout.count() / 1000.0, " s", who, " [", m, "]"),
            who.find("waiting for rank") != std::string::npos ? CommError::NamedTimeout : CommError::Transport);
  }
}

void Communicator::done(const char* op, const char* what, double blocked_s, Clock::time_point started) {
  ctx_.stats.comm_s += blocked_s;
  log_debug(op, " '", what, "' in group ", name_, ctx_.where.empty() ? "" : " at ", ctx_.where, ": ",
            std::chrono::duration<double>(Clock::now() - started).count() * 1e3, " ms in flight, ", blocked_s * 1e3,
            " ms blocked");
}

void Communicator::launch(const char* op, const char* what, const std::function<void()>& start) {
  try {
    start();
  } catch (const std::exception& e) {
    fail_op(op, what, concat("failed to start: ", e.what()), CommError::Transport);
  }
}

std::shared_ptr<Pending::Impl> Communicator::begin(const char* op, const char* what) {
  auto p = std::make_shared<Pending::Impl>();
  p->c = this, p->op = op, p->what = what, p->started = Clock::now();
  return p;
}

Pending Communicator::started(std::shared_ptr<Pending::Impl> p) {
  p->start_s = seconds_since(p->started);
  Pending r;
  r.impl_ = std::move(p);
  return r;
}

Pending Communicator::start_all_to_all(const at::Tensor& x, const char* what) {
  enter("all_to_all", what, &x);
  if (x.dim() < 1 || x.size(0) % size() != 0)
    fail_op("all_to_all", what, concat("needs dim 0 divisible by the group size ", size(), ", got ", x.sizes()), 0);
  auto p = begin("all_to_all", what);
  p->in = {send_buffer(x)};
  p->out = result_buffer(x.sizes(), x.options());
  if (!nccl_) p->in = {gloo_view(p->in[0])}, p->outs = {{gloo_view(p->out)}};  // the buffers as Gloo takes them
  at::Tensor& dst = nccl_ ? p->out : p->outs[0][0];
  std::vector<int64_t> splits;  // empty: equal blocks
  launch("all_to_all", what, [&] { p->work = impl_->group->alltoall_base(dst, p->in[0], splits, splits); });
  return started(std::move(p));
}

Pending Communicator::start_all_gather(const at::Tensor& x, const char* what) {
  enter("all_gather", what, &x);
  auto p = begin("all_gather", what);
  p->in = {send_buffer(x)};
  std::vector<int64_t> shape{int64_t(size())};
  for (auto s : x.sizes()) shape.push_back(s);
  p->out = result_buffer(shape, x.options());
  p->outs.resize(1);
  {
    c10::InferenceMode off(false);
    for (int i = 0; i < size(); ++i) p->outs[0].push_back(nccl_ ? p->out[i] : gloo_view(p->out[i]));
    if (!nccl_) p->in = {gloo_view(p->in[0])};
  }
  launch("all_gather", what, [&] { p->work = impl_->group->allgather(p->outs, p->in); });
  return started(std::move(p));
}

Pending Communicator::start_exchange(const at::Tensor& x, int to, int from, const char* what) {
  enter("send/recv", what, &x);
  auto p = begin("send/recv", what);
  p->to = to, p->from = from;
  const int tag = tag_++;
  p->in = {send_buffer(x)};  // staged: the host copy, kept until the Pending is waited
  p->outs = {{result_buffer(x.sizes(), x.options())}};
  p->out = p->outs[0][0];
  if (!nccl_) p->in = {gloo_view(p->in[0])}, p->outs = {{gloo_view(p->out)}};
  launch("send/recv", what, [&] {
    p->work = impl_->group->send(p->in, to, tag);
    p->recv = impl_->group->recv(p->outs[0], from, tag);
  });
  return started(std::move(p));
}

at::Tensor Communicator::broadcast(const at::Tensor& x, int root, const char* what) {
  enter("broadcast", what, &x);
  auto t0 = Clock::now();
  at::Tensor buf = staged_ ? send_buffer(x) : comm_buffer(x.sizes(), x.options());  // written on the others
  if (!staged_) {
    c10::InferenceMode off(false);
    buf.copy_(x);
  }
  std::vector<at::Tensor> ts{nccl_ ? buf : gloo_view(buf)};
  ::c10d::BroadcastOptions o;
  o.rootRank = root;
  cc::WorkPtr w;
  launch("broadcast", what, [&] { w = impl_->group->broadcast(ts, o); });
  wait(&w, "broadcast", what);
  buf = to_rank(buf);
  done("broadcast", what, seconds_since(t0), t0);
  return buf;
}

void Communicator::barrier(const char* what) {
  enter("barrier", what, nullptr);
  auto t0 = Clock::now();
  cc::WorkPtr w;
  launch("barrier", what, [&] { w = impl_->group->barrier(); });
  wait(&w, "barrier", what);
  done("barrier", what, seconds_since(t0), t0);
}

}  // namespace wan

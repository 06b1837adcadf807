// Communication between ranks through libtorch's c10d: a TCPStore rendezvous and one process
// group (Gloo for CPU ranks, NCCL for CUDA ranks where the libtorch has it) per group of ranks.
// Gloo on a rank whose device is not the CPU (the gloo transport, a GPU shared by several ranks)
// stages every transfer through pinned host memory: the input is copied to a host buffer, Gloo
// moves host tensors, and Pending::wait copies the result back to the rank's device.
//
// Every collective (1) checks its tensors are on this rank's device with the expected dtype,
// (2) runs with a timeout, and (3) fails with an error naming the rank, the collective, the
// group and where the request was (RankContext::where, e.g. "step 2/5, block 3").
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "parallel/devices.h"

namespace wan {

// A collective that failed because of another rank (what the device group ranks when it picks the
// root cause of a failed request): the collective timed out naming the ranks that never arrived,
// its transport failed or timed out without names, or it gave up because another rank failed.
struct CommError : Error {
  enum Kind { NamedTimeout = 1, Transport = 2, Aborted = 3 } kind;
  CommError(const std::string& m, Kind k) : Error(m), kind(k) {}
};

// Per-rank counters, reset per request.
struct CommStats {
  double comm_s = 0;        // wall time this rank was blocked in collectives (starting + waiting): the
                            // communication compute did not hide
  int64_t bytes_sent = 0;   // payload this rank handed to collectives
  int64_t collectives = 0;
  int64_t checks = 0;       // device/dtype checks (check_tensor)
};

// What a rank carries into every collective. One per rank, owned by its worker thread.
struct RankContext {
  int rank = 0, world = 1;
  at::Device device{at::kCPU};
  std::string device_name = "cpu";               // as the user wrote it: "cpu:1", "cuda:3"
  std::string where;                             // "step 2/5, block 3": quoted in errors
  std::chrono::milliseconds timeout{300000};     // every collective
  const std::atomic<bool>* abort = nullptr;      // another rank of this process failed: give up
  std::atomic<int64_t>* entered = nullptr;       // [world] collectives entered, per rank (in-process)
  // The backend of this rank's groups (parallel/devices.h; Default: NCCL on a CUDA rank where the
  // build has it, else Gloo). stage_host: Gloo stages through host buffers even on a CPU rank,
  // where it is a plain copy: the same code path as a GPU rank's, for tests (WANLAB_STAGE_HOST=1,
  // parallel/device_group.h). A non-CPU rank on Gloo always stages.
  Transport transport = Transport::Default;
  bool stage_host = false;
  CommStats stats;
};

// True when this build's libtorch has c10d's NCCL backend (a CUDA libtorch 2.x with USE_C10D_NCCL).
bool nccl_built();

// Checks `t` is on the rank's device with `dtype`; the error names the tensor, the rank and both
// devices (or dtypes).
void check_tensor(RankContext& ctx, const at::Tensor& t, const char* name, at::ScalarType dtype);
// Seconds one check_tensor call takes on this machine (the median of `reps` timed batches).
double check_tensor_cost_s(int reps = 5);

// The rendezvous point: a c10d::TCPStore, served by one process and joined by all.
class Rendezvous {
 public:
  // Serves on host:port (port 0 = any free port; see port()).
  static std::shared_ptr<Rendezvous> serve(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
  // Joins a served store.
  static std::shared_ptr<Rendezvous> join(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
  ~Rendezvous();
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  // The store's own operations (one client is not thread-safe: one Rendezvous per thread).
  int64_t add(const std::string& key, int64_t v);
  void set(const std::string& key, const std::string& value);
  bool check(const std::string& key);
  std::string get(const std::string& key);
  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  Rendezvous() = default;
  // serve (`server`) or join: the store at host:port, errors naming the address.
  static std::shared_ptr<Rendezvous> open(const std::string& host, uint16_t port, bool server,
                                          std::chrono::milliseconds timeout);
  std::string host_;
  uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;
};

class Communicator;

// A collective in flight (Communicator::start_*): the transfer runs beside whatever this rank
// computes next; wait() blocks until it is done and returns the result, once. Every member must
// start its collectives in the same order; waiting may happen in any order. A Pending dropped
// unwaited (an error elsewhere) lets the transfer finish on its own: the group is rebuilt after
// any failure.
class Pending {
 public:
  Pending() = default;
  bool active() const { return impl_ != nullptr; }
  at::Tensor wait();
  struct Impl;

 private:
  friend class Communicator;
  std::shared_ptr<Impl> impl_;
};

// One rank's membership of one group of ranks (all of them, a Ulysses group, a ring, a CFG pair).
// Construction blocks until every member has joined (each calls it from its own thread/process).
class Communicator {
 public:
  // `ranks`: the members' global ranks, in group order; ctx.rank must be among them. `key` makes
  // the store keys unique (a generation counter: groups are rebuilt after a failure).
  Communicator(RankContext& ctx, const Rendezvous& rdv, const std::string& name, const std::vector<int>& ranks,
               const std::string& key, const std::string& gloo_host);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }  // within the group
  int size() const { return int(ranks_.size()); }
  const std::string& name() const { return name_; }
  bool nccl() const { return nccl_; }
  bool staged() const { return staged_; }  // Gloo through host buffers (see the top of this file)

  // x: [size * n, ...] -> [size * n, ...]: block i of x goes to member i; block j of the result
  // came from member j.
  Pending start_all_to_all(const at::Tensor& x, const char* what);
  // x: [...] -> [size, ...], row j from member j.
  Pending start_all_gather(const at::Tensor& x, const char* what);
  // Sends `x` to member `to` and receives a tensor of x's shape from member `from` (a ring pass).
  // x must not be written until the Pending is waited.
  Pending start_exchange(const at::Tensor& x, int to, int from, const char* what);
  // The same, started and waited at once.
  at::Tensor all_to_all(const at::Tensor& x, const char* what) { return start_all_to_all(x, what).wait(); }
  at::Tensor all_gather(const at::Tensor& x, const char* what) { return start_all_gather(x, what).wait(); }
  at::Tensor exchange(const at::Tensor& x, int to, int from, const char* what) {
    return start_exchange(x, to, from, what).wait();
  }
  // -> member `root`'s x, on every member.
  at::Tensor broadcast(const at::Tensor& x, int root, const char* what);
  void barrier(const char* what);

 private:
  struct Impl;
  friend class Pending;
  void enter(const char* op, const char* what, const at::Tensor* t);
  // kind 0: this rank's own error (a plain Error); else a CommError of that kind.
  [[noreturn]] void fail_op(const char* op, const char* what, const std::string& why, int kind) const;
  // In-process, " waiting for rank R (it never reached this collective)" for the members that
  // entered fewer collectives than this rank; a generic phrase across processes.
  std::string missing_ranks(const std::vector<int>& members) const;
  // Polls a collective's work until done (timeout, abort and failures named).
  void wait(void* work, const char* op, const char* what);
  // Waits a send/recv pair: Gloo's point-to-point work completes only through wait(timeout).
  void wait_p2p(void* send, void* recv, int to, int from, const char* what);
  // Runs the backend call that starts collective `op`; a throw is a CommError "failed to start".
  void launch(const char* op, const char* what, const std::function<void()>& start);
  // A Pending for collective `op` on this group, its clock started (after enter()).
  std::shared_ptr<Pending::Impl> begin(const char* op, const char* what);
  // Hands out `p` once its collective is started, with the time starting took.
  static Pending started(std::shared_ptr<Pending::Impl> p);
  // Staging (staged()): what the backend reads, x's host copy (else x, contiguous); where it
  // writes a result (host or the rank's device); a result on the rank's device (else itself).
  at::Tensor send_buffer(const at::Tensor& x);
  at::Tensor result_buffer(at::IntArrayRef shape, const at::TensorOptions& o);
  at::Tensor to_rank(const at::Tensor& result);
  // Adds blocked time to the stats; debug log of the whole transfer.
  void done(const char* op, const char* what, double blocked_s, std::chrono::steady_clock::time_point started);

  RankContext& ctx_;
  std::string name_;
  std::vector<int> ranks_;
  int rank_ = 0;
  int tag_ = 0;
  bool nccl_ = false, staged_ = false;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wan

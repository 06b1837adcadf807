// A device group: N ranks, one long-lived worker thread per device, created once and reused for
// every request. A request runs SPMD: run(fn) calls fn on every rank's thread and returns when
// all are done. The c10d groups (parallel/process_group.h) are built once at start; after a
// failure on any rank, the other ranks are aborted, every rank's groups are rebuilt, and the
// first failure is rethrown, so the group serves the next request. Across processes, a node that
// stopped responding (parallel/node_monitor.h) is named in the error and the group is not rebuilt:
// every later request fails at once with the same error.
//
// Rank layout (global rank g): g = cfg_index * sp + ring_index * ulysses + ulysses_index,
// sp = ulysses * ring. Tokens are split over the sp ranks of a CFG branch in sp-rank order.
//
// On CUDA each rank's thread keeps its device current and queues its work on a stream of its own
// (common/cuda.h RankStreamScope), so ranks sharing a GPU ("cuda:0x4") do not serialise on one
// stream. run() waits for the work the calling thread queued on the ranks' devices before the
// ranks start, and each rank waits for its own stream before it reports done: tensors cross
// between the caller and the ranks only at those two points.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "parallel/devices.h"
#include "parallel/process_group.h"

namespace wan {

// Thrown by a rank's task when the request is cancelled at a step boundary (logged as info, not
// as an error).
struct RankCancelled : Error {
  using Error::Error;
};

struct RankState;

// Where tests and tools observe or perturb a rank's denoising step (none by default; set with
// DeviceGroup::set_step_hook / set_attention_hook). A hook runs on the rank's thread. It may
// throw: the rank fails as from any error (the group aborts the other ranks and rebuilds); it
// may block, and should then give up once s.ctx.abort is set.
//  - StepHook: at the start of each denoising step (0-based `step`) of every rank, once the ranks
//    agreed that the request was not cancelled (pipeline/denoise.cpp), before the step's compute.
//  - AttentionHook: before each sequence-parallel self-attention of the rank checks its inputs
//    and meets the other ranks (parallel/sequence_parallel.h), with those inputs q, k, v
//    ([1, H, Ls, d], this rank's tokens), which it may replace; s.step is the step.
using StepHook = std::function<void(RankState& s, int64_t step)>;
using AttentionHook = std::function<void(RankState& s, at::Tensor& q, at::Tensor& k, at::Tensor& v)>;

// One rank: its context and its memberships.
struct RankState {
  RankContext ctx;
  ParallelLayout layout;
  int cfg_index = 0, ring_index = 0, ulysses_index = 0;
  int sp_rank = 0;  // position among the sp ranks of its CFG branch (token shard index)
  std::shared_ptr<Rendezvous> store;  // this rank's own TCPStore client (a client is not thread-safe)
  std::unique_ptr<Communicator> world, sp, ulysses, ring, cfg;  // null where the degree is 1
  StepHook step_hook;            // see StepHook; empty: none
  AttentionHook attention_hook;  // see AttentionHook; empty: none
  int64_t step = 0;  // the denoising step in progress (for `where` and the hooks)
  int64_t request = 0;  // the group's request counter (1 = its first run), for the logs
  // Per request, filled by the step loop: wall seconds per step, of which in collectives, bytes
  // handed to collectives per step, and the rank's peak memory (parallel/rank_memory.h).
  std::vector<double> step_s, step_comm_s;
  std::vector<int64_t> step_bytes;
  int64_t peak_bytes = -1;
  std::string peak_method;
};

// One rank's figures for the last request.
struct RankStats {
  int rank = 0;
  std::string device;
  CommStats comm;
  std::vector<double> step_s, step_comm_s;
  std::vector<int64_t> step_bytes;
  int64_t peak_bytes = -1;
  std::string peak_method;
};

struct DeviceGroupOptions {
  std::vector<DeviceSpec> devices;  // this node's devices, one rank each
  ParallelLayout layout;            // ulysses x ring x cfg == devices.size() x nnodes
  std::chrono::milliseconds timeout{300000};
  // Several processes (nodes) joined through one TCPStore, served by node 0 at host:port; node K's
  // ranks are K * devices.size() + i. nnodes 1: host/port unused (a store on 127.0.0.1, any port).
  std::string rendezvous_host = "127.0.0.1";
  int rendezvous_port = 0;
  int nnodes = 1, node_rank = 0;
  // nnodes > 1: the store the pre-flight check (parallel/preflight.h) already served or joined at
  // host:port; null: served or joined here.
  std::shared_ptr<Rendezvous> store;
  // Where this node's ranks log (common/log.h); null: stderr at $WANLAB_LOG_LEVEL.
  std::shared_ptr<Logger> logger;
  // The ranks' c10d backend (parallel/devices.h choose_transport). stage_host: Gloo copies every
  // transfer through host buffers even on CPU ranks (RankContext::stage_host), a test switch, also
  // set by the environment variable WANLAB_STAGE_HOST=1.
  Transport transport = Transport::Default;
  bool stage_host = false;
};

class NodeMonitor;

class DeviceGroup {
 public:
  explicit DeviceGroup(const DeviceGroupOptions& o);
  ~DeviceGroup();
  DeviceGroup(const DeviceGroup&) = delete;
  DeviceGroup& operator=(const DeviceGroup&) = delete;

  int size() const { return int(ranks_.size()); }  // local ranks (threads of this process)
  int world() const { return size() * opts_.nnodes; }
  int first_rank() const { return opts_.node_rank * size(); }  // this node's first global rank
  const ParallelLayout& layout() const { return opts_.layout; }
  const std::vector<DeviceSpec>& devices() const { return opts_.devices; }  // this node's
  Transport transport() const { return opts_.transport; }
  bool shared_device() const { return shares_device(opts_.devices); }  // several ranks on one GPU
  std::chrono::milliseconds timeout() const { return opts_.timeout; }
  void set_timeout(std::chrono::milliseconds t);
  // Every rank's hooks from the next run on (StepHook, AttentionHook); {} removes one.
  void set_step_hook(StepHook hook);
  void set_attention_hook(AttentionHook hook);

  // fn(rank) on every rank's thread; one run at a time. Rethrows the first failure (as wan::Error).
  void run(const std::function<void(RankState&)>& fn);
  // Per-rank figures of the last run.
  std::vector<RankStats> stats() const;
  // The generation of the c10d groups (the same on every node; +1 at each rebuild after a
  // failure): keys in the store that concern one request's groups carry it.
  int64_t generation() const { return generation_; }
  // Seconds one device/dtype check takes here (measured once at start).
  double check_cost_s() const { return check_cost_s_; }

 private:
  void worker(int rank);
  void stop_threads();
  void build_groups(RankState& s);  // on the rank's thread
  void drop_groups(RankState& s);   // same order on every rank
  void dispatch(const std::function<void(RankState&)>& fn, std::vector<std::string>& errors,
                std::vector<int>* kinds = nullptr);

  DeviceGroupOptions opts_;
  std::shared_ptr<Rendezvous> rdv_;
  std::unique_ptr<NodeMonitor> monitor_;  // nnodes > 1: the other nodes' liveness
  std::string broken_;                    // set when a node died: the group cannot serve again
  double check_cost_s_ = 0;
  int64_t generation_ = 0;
  int64_t requests_ = 0;
  std::vector<std::unique_ptr<RankState>> ranks_;
  std::unique_ptr<std::atomic<int64_t>[]> entered_;
  std::atomic<bool> abort_{false};

  std::mutex run_mu_;  // one run at a time
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(RankState&)>* task_ = nullptr;
  int64_t task_id_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<std::string> errors_;  // per rank, empty if ok
  std::vector<int> error_kind_;      // per rank: 0 its own error, else CommError::Kind
  std::vector<double> error_time_;
  std::vector<std::thread> threads_;
};

}  // namespace wan

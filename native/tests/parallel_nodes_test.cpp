// Two nodes of one device group (two engines of this process joined through one TCPStore, as two
// processes would be): a rank that fails on node 1 fails the request on node 0 with node 1's own
// error quoted (published through the store), and both nodes serve the next request.
#include <thread>

#include "parallel/process_group.h"
#include "pipeline/t2v.h"
#include "faults.h"
#include "test.h"

using namespace wan;
using wantest::FaultInjection;

TEST(parallel_nodes_quote_the_failing_node_and_recover) {
  uint16_t port = Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port();  // a free port
  const std::string model = wantest::tiny_model();
  std::unique_ptr<T2VEngine> nodes[2];
  T2VRequest r;
  r.prompt_ids = at::remainder(at::arange(512, at::kLong) * 7 + 3, 380);
  r.prompt_mask = (at::arange(512, at::kLong) < 12).to(at::kLong);
  r.negative_ids = at::remainder(at::arange(512, at::kLong) * 5 + 1, 380);
  r.negative_mask = (at::arange(512, at::kLong) < 7).to(at::kLong);
  r.seed = 3, r.height = 32, r.width = 32, r.num_frames = 5, r.num_inference_steps = 2;
  std::array<std::string, 2> err, open_err;
  open_err = wantest::on_two_nodes([&](int k) {
    ParallelOptions p;
    p.devices = "cpu:0-1", p.ulysses = 2, p.ring = 2, p.timeout_s = 30;
    p.rendezvous = "tcp://127.0.0.1:" + std::to_string(port), p.nnodes = 2, p.node_rank = k;
    nodes[k] = std::make_unique<T2VEngine>(model, p);
  });
  if (!open_err[0].empty() || !open_err[1].empty()) throw wantest::Failure{open_err[0] + " | " + open_err[1]};
  FaultInjection f;
  f.kind = FaultInjection::Throw, f.rank = 2, f.step = 1;
  wantest::inject_fault(*nodes[1]->group(), f);
  err = wantest::on_two_nodes([&](int k) {
    nodes[k]->generate(r);
  });
  std::printf("     node 0: %s\n     node 1: %s\n", err[0].c_str(), err[1].c_str());
  EXPECT(err[1].find("rank 2 (cpu:0): injected fault at step 2/2") == 0);
  EXPECT(err[0].find("node 1: rank 2 (cpu:0): injected fault at step 2/2") == 0);
  EXPECT(err[0].find("; here: rank ") != std::string::npos);
  // Both nodes rebuilt their groups: the next request runs and gives the same latents on both.
  wantest::inject_fault(*nodes[1]->group(), {});
  at::Tensor lat[2];
  err = wantest::on_two_nodes([&](int k) {
    lat[k] = nodes[k]->generate(r).latents;
  });
  if (!lat[0].defined() || !lat[1].defined()) throw wantest::Failure{"after the failure: " + err[0] + " | " + err[1]};
  EXPECT(at::equal(lat[0], lat[1]));
}

// The pre-flight check of a multi-process group (parallel/preflight.h), its nodes as threads of
// this process: a node that never joins is named within the timeout; different models or GPUs
// claimed twice are refused on every node; a complete group passes its smoke collectives and
// measures, for layout auto, the links within and across hosts and each rank's compute; ranks are
// grouped by the hosts the nodes publish (several processes on one host are one node of the rule).
#include <chrono>
#include <thread>

#include "parallel/preflight.h"
#include "test.h"

using namespace wan;

namespace {
uint16_t free_port() { return Rendezvous::serve("127.0.0.1", 0, std::chrono::seconds(5))->port(); }

PreflightOptions node(uint16_t port, int k, int nnodes, const std::string& devices, const std::string& model = "m") {
  PreflightOptions o;
  o.port = port, o.nnodes = nnodes, o.node_rank = k;
  o.devices = parse_devices(devices);
  o.timeout = std::chrono::milliseconds(3000);
  o.model = model;
  return o;
}

// Runs every node's preflight on its own thread: each node's error, "" if it passed.
std::vector<std::string> run_nodes(const std::vector<PreflightOptions>& nodes) {
  std::vector<std::string> errs(nodes.size());
  std::vector<std::thread> ts;
  for (size_t k = 0; k < nodes.size(); ++k)
    ts.emplace_back([&, k] {
      try {
        preflight(nodes[k]);
      } catch (const std::exception& e) {
        errs[k] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  return errs;
}
}  // namespace

TEST(preflight_names_a_rank_that_never_joins_within_the_timeout) {
  PreflightOptions o = node(0, 0, 2, "cpu");
  o.timeout = std::chrono::milliseconds(1000);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_ERROR(preflight(o), "pre-flight: rank 1 (node 1) never joined the rendezvous at 127.0.0.1:", "within 1 s",
               "joined: node 0 (rank 0, host ", "cpu:0)", "No weights were loaded");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT(s >= 1.0 && s < 2.5);
}

TEST(preflight_names_node_0_when_it_never_serves_the_store) {
  PreflightOptions o = node(free_port(), 1, 2, "cpu");
  o.timeout = std::chrono::milliseconds(1000);
  EXPECT_ERROR(preflight(o), "pre-flight: node 0 (rank 0) never answered at 127.0.0.1:", "here: node 1 (rank 1, host ");
}

TEST(preflight_passes_a_complete_group_and_hands_on_node_0s_store) {
  const uint16_t port = free_port();
  std::vector<PreflightOptions> nodes = {node(port, 0, 2, "cpu:0-1"), node(port, 1, 2, "cpu:0-1")};
  std::vector<PreflightResult> res(2);
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k) ts.emplace_back([&, k] { res[k] = preflight(nodes[k]); });
  for (auto& t : ts) t.join();
  EXPECT(res[0].store && res[0].store->port() == port);
  EXPECT(res[1].nodes.size() == 2 && res[1].nodes[1].first_rank == 2 && res[1].nodes[1].devices == "cpu:0,1");
  EXPECT(res[0].nodes[0].build == engine_build());
}

TEST(preflight_refuses_nodes_with_different_models_on_every_node) {
  const uint16_t port = free_port();
  const auto errs = run_nodes({node(port, 0, 2, "cpu", "aaaa (3 tensors)"), node(port, 1, 2, "cpu", "bbbb (3 tensors)")});
  for (const auto& e : errs)
    if (e.find("pre-flight: node 1 (rank 1, host ") == std::string::npos ||
        e.find("loaded a different model (fingerprint bbbb (3 tensors)) than node 0 (rank 0") == std::string::npos)
      throw wantest::Failure{e};
}

TEST(preflight_refuses_two_ranks_on_one_gpu_of_one_host) {
  const uint16_t port = free_port();
  const auto errs = run_nodes({node(port, 0, 2, "cuda:0"), node(port, 1, 2, "cuda:0")});
  for (const auto& e : errs)
    if (e.find("rank 0 and rank 1 both use cuda:0 on host ") == std::string::npos) throw wantest::Failure{e};
}

TEST(weights_fingerprint_follows_the_weights_not_the_folder) {
  const std::string a = weights_fingerprint(load_model(wantest::tiny_model("official", 1)));
  EXPECT(a == weights_fingerprint(load_model(wantest::tiny_model("official", 1))));
  EXPECT(a != weights_fingerprint(load_model(wantest::tiny_model("official", 2))));
  EXPECT(a.find(" tensors)") != std::string::npos);
}

TEST(preflight_names_a_missing_middle_rank_on_every_node_that_started) {
  // Nodes 0 and 2 of 3 start, node 1 never does: both name rank 1 and return, neither hangs.
  const uint16_t port = free_port();
  std::vector<PreflightOptions> nodes = {node(port, 0, 3, "cpu"), node(port, 2, 3, "cpu")};
  nodes[0].timeout = std::chrono::milliseconds(2000);
  nodes[1].timeout = std::chrono::milliseconds(3000);  // node 0 gives up first and takes the store with it
  const auto errs = run_nodes(nodes);
  for (const auto& e : errs)
    if (e.find("rank 1 (node 1)") == std::string::npos || e.find("No weights were loaded") == std::string::npos)
      throw wantest::Failure{e};
}

TEST(preflight_measures_the_links_and_compute_layout_auto_weighs_the_same_on_every_node_within_a_second) {
  const uint16_t port = free_port();
  std::vector<PreflightOptions> nodes = {node(port, 0, 2, "cpu:0-1"), node(port, 1, 2, "cpu:0-1")};
  for (auto& n : nodes) n.probe_head_dim = 64;
  nodes[0].host_name = "host-a", nodes[1].host_name = "host-b";  // two hosts of 2 ranks
  std::vector<PreflightResult> res(2);
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k) ts.emplace_back([&, k] { res[k] = preflight(nodes[k]); });
  for (auto& t : ts) t.join();
  for (const auto& r : res) {
    const MeasuredLinks& m = r.links;
    EXPECT(m.within.bytes_per_s > 0 && m.within.latency_s > 0 && m.across.bytes_per_s > 0 && m.across.latency_s > 0);
    EXPECT(m.flops_per_s > 0 && m.probe_s > 0);
    EXPECT(r.all_to_all_within_s > 0 && r.all_to_all_group_s > 0);
    // the smoke collectives and the measurements together, on 4 thread ranks of 2 busy cores
    EXPECT(r.collectives_s < 1.0);
  }
  // the group's figures, not each node's own: both nodes pick the same layout from them
  EXPECT(res[0].links.within.bytes_per_s == res[1].links.within.bytes_per_s);
  EXPECT(res[0].links.across.latency_s == res[1].links.across.latency_s);
  EXPECT(res[0].links.flops_per_s == res[1].links.flops_per_s);
  EXPECT(links_text(res[0].links).find("within a host ") == 0);
  EXPECT(res[0].hosts.ranks_per_node == 2 && res[0].hosts.unit == "host");
  EXPECT(res[0].hosts.text == "2 ranks per host (2 hosts, 1 process each; from the hosts the pre-flight exchanged)");
}

TEST(preflight_groups_processes_on_one_host_as_one_node_and_measures_the_links_within_it) {
  const uint16_t port = free_port();
  std::vector<PreflightOptions> nodes = {node(port, 0, 2, "cpu:0"), node(port, 1, 2, "cpu:0")};
  for (auto& n : nodes) n.probe_head_dim = 64, n.host_name = "vm";
  std::vector<PreflightResult> res(2);
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k) ts.emplace_back([&, k] { res[k] = preflight(nodes[k]); });
  for (auto& t : ts) t.join();
  for (const auto& r : res) {
    EXPECT(r.hosts.ranks_per_node == 2 && r.hosts.unit == "host");
    EXPECT(r.hosts.text == "2 ranks per host (all on host vm, 2 processes; from the hosts the pre-flight exchanged)");
    // one rank per process, yet the link between the processes is a within-host one
    EXPECT(r.links.within.bytes_per_s > 0 && !r.links.across.measured());
  }
}

TEST(group_by_host_counts_the_ranks_on_each_host_or_falls_back_to_processes_naming_why) {
  auto nodes = [](std::vector<std::string> hosts) {
    std::vector<PreflightNode> out;
    for (size_t k = 0; k < hosts.size(); ++k) out.push_back({int(k), int(k), hosts[k], "cpu:0", "", "", 0});
    return out;
  };
  // torchrun --nproc-per-node 8 on one host
  EXPECT(group_by_host(nodes(std::vector<std::string>(8, "gpu1")), 1).ranks_per_node == 8);
  const HostGrouping two = group_by_host(nodes({"a", "a", "b", "b"}), 2);
  EXPECT(two.ranks_per_node == 4 && two.unit == "host");
  EXPECT(two.text == "4 ranks per host (2 hosts, 2 processes each; from the hosts the pre-flight exchanged)");
  const HostGrouping unequal = group_by_host(nodes({"a", "a", "a", "b"}), 1);
  EXPECT(unequal.ranks_per_node == 1 && unequal.unit == "process");
  EXPECT(unequal.text == "1 rank per process, not per host: hosts hold unequal ranks (a 3, b 1) (from the hosts the "
                         "pre-flight exchanged)");
  const HostGrouping split = group_by_host(nodes({"a", "b", "a", "b"}), 2);
  EXPECT(split.ranks_per_node == 2 && split.unit == "process");
  EXPECT(split.text.find("2 ranks per process, not per host: host a's ranks are not consecutive (node 2)") == 0);
}

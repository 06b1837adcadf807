// Per-rank logs and stats of a device group: one log file per rank with rank-prefixed lines,
// filtered by level; per-step compute/communication split, bytes and peak memory per rank.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/t2v.h"
#include "faults.h"
#include "test.h"

using namespace wan;
using wantest::FaultInjection;

namespace {
T2VRequest small_request(int64_t steps) { return wantest::tiny_request(32, 32, 5, steps); }
std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }
}  // namespace

TEST(parallel_log_files_per_rank_with_levels) {
  const std::string model = wantest::tiny_model();
  const std::string info_dir = wantest::scratch("logs-info"), debug_dir = wantest::scratch("logs-debug"),
                    error_dir = wantest::scratch("logs-error");
  auto engine = [&](const std::string& dir, const std::string& level) {
    ParallelOptions p;
    p.devices = "cpu:0-3", p.ulysses = 2, p.ring = 2, p.timeout_s = 60;
    p.log_dir = dir, p.log_level = level;
    return std::make_unique<T2VEngine>(model, p);
  };
  {
    auto e = engine(info_dir, "info");
    e->generate(small_request(2));
  }
  for (int r = 0; r < 4; ++r) {
    const std::string log = read_text(info_dir + "/rank-" + std::to_string(r) + ".log");
    const std::string prefix = "[rank " + std::to_string(r) + " cpu:" + std::to_string(r) + "] ";
    EXPECT(log.rfind(prefix, 0) == 0);  // every file starts with its rank's prefix
    EXPECT(has(log, "info: joined world[0,1,2,3]"));
    EXPECT(has(log, "info: request 1: start, 2 steps"));
    EXPECT(has(log, "info: request 1: done in "));
    EXPECT(has(log, " bytes sent in "));
    EXPECT(!has(log, "debug:"));
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) EXPECT(line.rfind(prefix, 0) == 0);
  }
  EXPECT(has(read_text(info_dir + "/node-0.log"), "[node 0] "));
  EXPECT(!std::filesystem::exists(info_dir + "/rank-4.log"));
  {
    auto e = engine(debug_dir, "debug");
    e->generate(small_request(2));
  }
  const std::string dbg = read_text(debug_dir + "/rank-1.log");
  EXPECT(has(dbg, "debug: all_to_all 'ulysses q/k/v' in group ulysses[0,1] at step 1/2, block 0: "));
  EXPECT(has(dbg, "debug: send/recv 'ring kv' in group ring[1,3] at step 2/2, block 1: "));
  EXPECT(has(dbg, "debug: request 1: step 2/2 in "));
  {
    auto e = engine(error_dir, "error");
    e->generate(small_request(2));  // nothing at error level ...
    EXPECT(!std::filesystem::exists(error_dir + "/rank-2.log"));
    FaultInjection f;
    f.kind = FaultInjection::Throw, f.rank = 2, f.step = 1;
    wantest::inject_fault(*e->group(), f);
    EXPECT_THROWS(e->generate(small_request(2)), "rank 2 (cpu:2): injected fault at step 2/2");
  }
  // ... but the failure, in the failed rank's file, with its rank, step and cause.
  const std::string err = read_text(error_dir + "/rank-2.log");
  EXPECT(has(err, "[rank 2 cpu:2] "));
  EXPECT(has(err, "error: rank 2 (cpu:2): injected fault at step 2/2"));
  EXPECT(!has(err, "info:"));
  EXPECT_THROWS(engine(wantest::scratch("logs-bad"), "verbose"), "log level must be one of error, warn, info, debug, got 'verbose'");
}

TEST(parallel_stats_split_compute_and_communication_per_step) {
  ParallelOptions p;
  p.devices = "cpu:0-3", p.ulysses = 2, p.ring = 2, p.timeout_s = 60;
  T2VEngine e(wantest::tiny_model(), p);
  const T2VResult r = e.generate(small_request(3));
  const nlohmann::json& ranks = r.timings["ranks"];
  EXPECT(ranks.size() == 4);
  for (int i = 0; i < 4; ++i) {
    const nlohmann::json& k = ranks[i];
    EXPECT(k["rank"] == i && k["device"] == "cpu:" + std::to_string(i));
    EXPECT(k["step_s"].size() == 3 && k["step_comm_s"].size() == 3 && k["step_bytes"].size() == 3 &&
           k["step_compute_s"].size() == 3);
    double wall = 0, comm = 0;
    int64_t bytes = 0;
    for (int s = 0; s < 3; ++s) {
      wall += k["step_s"][s].get<double>(), comm += k["step_comm_s"][s].get<double>();
      bytes += k["step_bytes"][s].get<int64_t>();
      EXPECT(k["step_bytes"][s] == k["step_bytes"][0]);  // every step moves the same bytes
      EXPECT(k["step_comm_s"][s].get<double>() > 0 && k["step_compute_s"][s].get<double>() > 0);
    }
    EXPECT(bytes == k["bytes_sent"].get<int64_t>());
    EXPECT(std::abs(comm - k["comm_s"].get<double>()) < 1e-9);
    EXPECT(std::abs(wall - comm - k["compute_s"].get<double>()) < 1e-9);
    EXPECT(k["bytes_sent"] == ranks[0]["bytes_sent"]);
    EXPECT(k["checks"].get<int64_t>() > 0 && k["check_s"].get<double>() > 0);
    EXPECT(k["peak_bytes"].get<int64_t>() > 0);
  }
  std::printf("     rank 0: compute %.3f s, comm %.3f s, %lld bytes, %lld collectives, %lld checks (%.1f us), peak %lld B\n",
              ranks[0]["compute_s"].get<double>(), ranks[0]["comm_s"].get<double>(),
              (long long)ranks[0]["bytes_sent"].get<int64_t>(), (long long)ranks[0]["collectives"].get<int64_t>(),
              (long long)ranks[0]["checks"].get<int64_t>(), ranks[0]["check_s"].get<double>() * 1e6,
              (long long)ranks[0]["peak_bytes"].get<int64_t>());
  // Twice the tokens per rank: more peak memory (activations scale with the sequence).
  T2VRequest big = small_request(1);
  big.height = 64, big.width = 64;
  const int64_t peak_big = e.generate(big).timings["ranks"][0]["peak_bytes"].get<int64_t>();
  std::printf("     peak 32x32x5: %lld B, 64x64x5: %lld B\n", (long long)ranks[0]["peak_bytes"].get<int64_t>(),
              (long long)peak_big);
  EXPECT(peak_big > ranks[0]["peak_bytes"].get<int64_t>());
}

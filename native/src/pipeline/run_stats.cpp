#include "pipeline/run_stats.h"

namespace wan {

nlohmann::json rank_stats_json(const DeviceGroup& group) {
  nlohmann::json ranks = nlohmann::json::array();
  for (const RankStats& s : group.stats()) {
    nlohmann::json step_compute = nlohmann::json::array();
    double wall = 0;
    for (size_t i = 0; i < s.step_s.size(); ++i) step_compute.push_back(s.step_s[i] - s.step_comm_s[i]), wall += s.step_s[i];
    ranks.push_back({{"rank", s.rank}, {"device", s.device}, {"compute_s", wall - s.comm.comm_s},
                     {"comm_s", s.comm.comm_s}, {"bytes_sent", s.comm.bytes_sent}, {"collectives", s.comm.collectives},
                     {"checks", s.comm.checks}, {"check_s", double(s.comm.checks) * group.check_cost_s()},
                     {"peak_bytes", s.peak_bytes}, {"peak_method", s.peak_method}, {"step_s", s.step_s},
                     {"step_compute_s", step_compute}, {"step_comm_s", s.step_comm_s}, {"step_bytes", s.step_bytes}});
  }
  return ranks;
}

}  // namespace wan

// `wanlab doctor --devices …` (the addon's checkLinks): the group's pre-flight check and its links
// measured (parallel/link_check.h), options and report as JSON.
//   options: {devices: "cpu:0-1", rendezvous?: "tcp://HOST:PORT", nnodes?: N, nodeRank?: K,
//             timeoutS?: 30, sizes?: [bytes...], reps?: 5}
//   report:  {world, nodes: [{node, first_rank, host, devices, build, model, pid}], meet_s,
//             preflight_collectives_s, measures: [{op, bytes, latency_s, bytes_per_s}]}
#pragma once
#include <nlohmann/json.hpp>

namespace wan {

nlohmann::json links_report(const nlohmann::json& options);

}  // namespace wan

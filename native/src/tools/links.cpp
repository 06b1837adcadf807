#include "tools/links.h"

#include "common/error.h"
#include "parallel/link_check.h"
#include "pipeline/json_fields.h"

namespace wan {

nlohmann::json links_report(const nlohmann::json& j) {
  check_json_keys(j, {"devices", "transport", "rendezvous", "nnodes", "nodeRank", "timeoutS", "sizes", "reps"},
                  "link check options");
  LinkCheckOptions o;
  PreflightOptions& g = o.group;
  std::string devices = "cpu:0-1", transport, rendezvous;
  double timeout_s = 30;
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const nlohmann::json& v = item.value();
    if (k == "devices") devices = json_field_string(v, k, k);
    else if (k == "transport") transport = json_field_string(v, k, k);
    else if (k == "rendezvous") rendezvous = json_field_string(v, k, k);
    else if (k == "nnodes") g.nnodes = int(json_field_int(v, k, k, 1, 1024));
    else if (k == "nodeRank") g.node_rank = int(json_field_int(v, k, k, 0, 1023));
    else if (k == "timeoutS") timeout_s = json_field_number(v, k, k);
    else if (k == "sizes") o.sizes = json_field_ints(v, k, k, 16, 4, int64_t(1) << 30);
    else if (k == "reps") o.reps = int(json_field_int(v, k, k, 1, 1000));
  }
  if (!(timeout_s > 0 && timeout_s <= 86400)) throw ParamError("timeoutS", concat("timeoutS must be in (0, 86400], got ", timeout_s));
  if (g.node_rank >= g.nnodes) throw ParamError("nodeRank", concat("nodeRank ", g.node_rank, " must be below nnodes ", g.nnodes));
  // As an engine opens the group: the list checked against this build and machine, the transport chosen.
  const GroupDevices group = check_group_devices(devices, transport);
  g.devices = group.devices, g.transport = group.transport;
  g.timeout = std::chrono::milliseconds(int64_t(timeout_s * 1000));
  if (g.nnodes > 1) {
    const size_t colon = rendezvous.rfind(':');
    if (rendezvous.rfind("tcp://", 0) != 0 || colon == std::string::npos || colon < 6)
      throw ParamError("rendezvous", concat("rendezvous must be tcp://HOST:PORT for several nodes, got '", rendezvous, "'"));
    g.host = rendezvous.substr(6, colon - 6);
    const std::string port = rendezvous.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
      throw ParamError("rendezvous", concat("rendezvous port must be 1..65535, got '", port, "'"));
    g.port = std::stoi(port);
  }
  if (g.devices.size() * size_t(g.nnodes) < 2) fail("link check: needs at least 2 ranks (e.g. --devices cpu:0-1)");
  const LinkReport r = check_links(o);
  nlohmann::json nodes = nlohmann::json::array(), measures = nlohmann::json::array();
  for (const auto& n : r.preflight.nodes)
    nodes.push_back({{"node", n.node}, {"first_rank", n.first_rank}, {"host", n.host}, {"devices", n.devices},
                     {"build", n.build}, {"model", n.model}, {"pid", n.pid}});
  for (const auto& m : r.measures)
    measures.push_back({{"op", m.op}, {"bytes", m.bytes}, {"latency_s", m.latency_s}, {"bytes_per_s", m.bytes_per_s}});
  return {{"world", r.world}, {"node_rank", g.node_rank}, {"nodes", nodes}, {"meet_s", r.preflight.meet_s},
          {"preflight_collectives_s", r.preflight.collectives_s}, {"measures", measures}};
}

}  // namespace wan

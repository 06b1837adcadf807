#include "tools/projection_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/error.h"
#include "parallel/ulysses.h"

namespace wan {

LinkSpeed link_preset(const std::string& name) {
  if (name == "nvlink4") return {name, 450e9, 20e-6, {}, 0};
  if (name == "ib400") return {name, 50e9, 20e-6, {}, 0};
  if (name == "pcie4") return {name, 25e9, 20e-6, {}, 0};
  fail("link '", name, "' is not a preset (allowed: nvlink4, ib400, pcie4; or --links FILE, the JSON of "
       "`wanlab doctor --devices ... --json`)");
}

LinkSpeed link_from_doctor(const nlohmann::json& r, const std::string& source) {
  if (!r.is_object() || !r.contains("measures") || !r["measures"].is_array())
    fail(source, ": not a link report (no \"measures\" array; write one with `wanlab doctor --devices LIST --json`)");
  LinkSpeed l;
  l.name = source;
  l.measured_world = r.value("world", 0);
  for (const auto& m : r["measures"]) {
    for (const char* k : {"op", "bytes", "latency_s"})
      if (!m.contains(k)) fail(source, ": a measure lacks \"", k, "\"");
    const double bytes = m["bytes"].get<double>(), s = m["latency_s"].get<double>();
    if (!(bytes > 0) || !(s > 0) || !std::isfinite(s)) fail(source, ": measure ", m.dump(), " needs bytes > 0 and latency_s > 0");
    l.measured[m["op"].get<std::string>()].push_back({bytes, s});
  }
  for (const char* op : {"all_to_all", "all_gather", "send/recv"}) {
    auto it = l.measured.find(op);
    if (it == l.measured.end()) fail(source, ": no measure of ", op, " (the projection needs all_to_all, all_gather and send/recv)");
    std::sort(it->second.begin(), it->second.end());
  }
  return l;
}

double collective_s(const LinkSpeed& l, const std::string& op, double bytes, int group) {
  if (group <= 1) return 0;
  if (l.measured.empty()) {
    const double wire = op == "all_to_all" ? bytes * (group - 1) / group : op == "send/recv" ? bytes : bytes * (group - 1);
    return l.latency_s + wire / l.bytes_per_s;
  }
  auto it = l.measured.find(op);
  if (it == l.measured.end()) fail("link ", l.name, " has no measure of ", op);
  const auto& p = it->second;  // ascending bytes
  if (bytes <= p.front().first) return p.front().second;
  for (size_t i = 1; i < p.size(); ++i)
    if (bytes <= p[i].first) {
      const double f = (bytes - p[i - 1].first) / (p[i].first - p[i - 1].first);
      return p[i - 1].second + f * (p[i].second - p[i - 1].second);
    }
  return p.back().second * bytes / p.back().first;  // the largest size's bytes per second
}

std::string projection_layout_name(const ProjectionLayout& l) {
  std::string sp;
  if (l.ulysses > 1) sp += concat("u", l.ulysses);
  if (l.ring > 1) sp += concat("r", l.ring);
  std::string n = l.cfg_parallel ? (sp.empty() ? "cfg" : "cfg-" + sp) : (sp.empty() ? "1" : sp);
  return l.shard_weights && l.sequence_parallel() > 1 ? n + "-shard" : n;
}

ProjectionLayout parse_projection_layout(const std::string& name) {
  ProjectionLayout l;
  std::string s = name;
  auto bad = [&] {
    fail("layout '", name, "' is not of the form 1, uN, rN, uNrM, cfg, cfg-uN, cfg-uNrM (N, M >= 2), optionally ending in -shard");
  };
  const std::string shard = "-shard";
  if (s.size() > shard.size() && s.compare(s.size() - shard.size(), shard.size(), shard) == 0) {
    l.shard_weights = true;
    s.resize(s.size() - shard.size());
  }
  if (s == "1") {
    if (l.shard_weights) bad();
    return l;
  }
  if (s.rfind("cfg", 0) == 0) {
    l.cfg_parallel = true;
    s = s.substr(3);
    if (s.empty()) {
      if (l.shard_weights) bad();
      return l;
    }
    if (s[0] != '-') bad();
    s = s.substr(1);
  }
  auto degree = [&](char c, int& out) {
    if (s.empty() || s[0] != c) return;
    size_t i = 1;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 1 || i > 5) bad();
    out = std::stoi(s.substr(1, i - 1));
    if (out < 2) bad();
    s = s.substr(i);
  };
  degree('u', l.ulysses);
  degree('r', l.ring);
  if (!s.empty() || l.sequence_parallel() == 1) bad();
  return l;
}

nlohmann::json Projection::to_json() const {
  return {{"tokens_per_rank", tokens_per_rank},
          {"ulysses_head_groups", head_groups},
          {"passes_per_step", passes},
          {"bytes_per_step", bytes_per_step},
          {"collectives_per_step", collectives_per_step},
          {"block", {{"compute_s", block_compute_s},
                     {"ulysses_comm_s", ulysses_comm_s},
                     {"ring_comm_s", ring_comm_s},
                     {"shard_comm_s", shard_comm_s},
                     {"ulysses_exposed_s", ulysses_exposed_s},
                     {"ring_exposed_s", ring_exposed_s},
                     {"shard_exposed_s", shard_exposed_s},
                     {"total_s", block_s}}},
          {"output_gather_s", gather_s},
          {"cfg_velocity_s", velocity_s},
          {"cancel_flag_s", flag_s},
          {"forward_s", forward_s},
          {"exposed_comm_per_step_s", exposed_per_step_s},
          {"measured_per_step_s", measured_per_step_s},
          {"step_s", step_s}};
}

Projection project_step(const ProjectionShape& s, const ProjectionLayout& l, const RankCompute& c,
                        const ProjectionLinks& links) {
  const int64_t u = l.ulysses, r = l.ring, sp = l.sequence_parallel(), D = s.dim, e = s.elem_bytes;
  if (s.heads % u != 0) fail("layout ", projection_layout_name(l), ": ulysses ", u, " does not divide the ", s.heads, " heads");
  if (sp > s.tokens) fail("layout ", projection_layout_name(l), ": ", sp, " sequence-parallel ranks but only ", s.tokens, " tokens");
  Projection p;
  const int64_t Ls = (s.tokens + sp - 1) / sp;
  const int64_t G = u > 1 ? ulysses_head_groups(s.heads / u) : 1;
  p.tokens_per_rank = Ls, p.head_groups = G;
  p.passes = s.cfg && !l.cfg_parallel ? 2 : 1;
  // Which link each group uses: ranks are ulysses-innermost (ring stride u, CFG halves stride sp),
  // so a group of `count` ranks `stride` apart stays in a node while stride x count fits one.
  auto link = [&](int64_t stride, int64_t count) -> const LinkSpeed& {
    return stride * count > links.gpus_per_node ? links.inter : links.intra;
  };
  const LinkSpeed& lu = link(1, u);
  const LinkSpeed& lr = link(u, r);
  const LinkSpeed& lsp = link(1, sp);

  // The engine's bytes handed per block (src/parallel-model.ts stepComm).
  const double ulysses_block = u > 1 ? 4.0 * D * Ls * e : 0, ring_pass = 2.0 * D * Ls * e / G;
  double shard_block = 0;
  const bool sharded = l.shard_weights && sp > 1;
  if (sharded)
    for (const auto& [elements, bytes] : s.shard_parts) shard_block += double(elements) * bytes;
  const double gather_bytes = sp > 1 ? double(Ls) * s.head_channels * e : 0;
  const bool velocity = l.cfg_parallel && s.cfg;
  p.bytes_per_step = 4 + p.passes * (s.layers * (ulysses_block + (r - 1) * G * ring_pass + shard_block) + gather_bytes) +
                     (velocity ? s.velocity_elements * 4.0 : 0);
  p.collectives_per_step = 1 + p.passes * (s.layers * G * ((u > 1 ? 2 : 0) + (r - 1)) + (sp > 1 ? 1 : 0)) +
                           (velocity ? 1 : 0) + (sharded ? p.passes * s.layers * int64_t(s.shard_parts.size()) : 0);

  // Ring: per head group r passes; pass p's exchange (p < r-1) beside pass p's attention + merge.
  const double pass_compute = (c.attention_s + c.merge_s) / double(G * r);
  const double t_ring = r > 1 ? collective_s(lr, "send/recv", ring_pass, int(r)) : 0;
  p.ring_comm_s = double(G * (r - 1)) * t_ring;
  p.ring_exposed_s = double(G * (r - 1)) * std::max(0.0, t_ring - pass_compute);
  // One head group's attention, copies and exposed ring passes: what hides Ulysses' transfers.
  const double group_s = (c.copies_s + c.attention_s + c.merge_s + p.ring_exposed_s) / double(G);
  if (u > 1) {
    const double t_in = collective_s(lu, "all_to_all", 3.0 * D * Ls * e / G, int(u));
    const double t_out = collective_s(lu, "all_to_all", 1.0 * D * Ls * e / G, int(u));
    p.ulysses_comm_s = double(G) * (t_in + t_out);
    // Group 0's inbound and group G-1's outbound are exposed; during group g's attention travel
    // group g+1's inbound (g < G-1) and group g-1's outbound (g > 0).
    p.ulysses_exposed_s = t_in + t_out;
    for (int64_t g = 0; g < G; ++g) {
      const double hidden = (g + 1 < G ? t_in : 0) + (g > 0 ? t_out : 0);
      p.ulysses_exposed_s += std::max(0.0, hidden - group_s);
    }
  }
  p.block_compute_s = c.other_s + c.copies_s + c.attention_s + c.merge_s;
  const double block_no_shard = c.other_s + double(G) * group_s + p.ulysses_exposed_s;
  if (sharded) {
    for (const auto& [elements, bytes] : s.shard_parts)
      p.shard_comm_s += collective_s(lsp, "all_gather", double(elements) * bytes, int(sp));
    p.shard_exposed_s = std::max(0.0, p.shard_comm_s - block_no_shard);
  }
  p.block_s = block_no_shard + p.shard_exposed_s;

  p.gather_s = sp > 1 ? collective_s(lsp, "all_gather", gather_bytes, int(sp)) : 0;
  p.velocity_s = velocity ? collective_s(link(sp, 2), "all_gather", s.velocity_elements * 4.0, 2) : 0;
  p.flag_s = l.gpus() > 1 ? collective_s(link(1, l.gpus()), "all_gather", 4, l.gpus()) : 0;
  p.forward_s = s.layers * p.block_s + c.outside_s + p.gather_s;
  p.step_s = p.passes * p.forward_s + p.velocity_s + p.flag_s;
  p.measured_per_step_s = p.passes * (s.layers * p.block_compute_s + c.outside_s);
  p.exposed_per_step_s = p.step_s - p.measured_per_step_s;
  return p;
}

}  // namespace wan

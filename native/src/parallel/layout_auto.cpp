#include "parallel/layout_auto.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "common/error.h"
#include "parallel/ulysses.h"

namespace wan {

namespace {
std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string degrees(const ParallelLayout& l) {
  return concat("cfg ", l.cfg, " x ulysses ", l.ulysses, " x ring ", l.ring);
}

bool several_nodes(const LayoutInputs& in) { return in.ranks_per_node > 0 && in.ranks_per_node < in.ranks; }

// Rules 1-3: the degrees from the ranks, the heads and the hosts alone.
LayoutChoice rule_layout(const LayoutInputs& in) {
  LayoutChoice c;
  ParallelLayout& l = c.layout;
  l.devices = in.ranks;
  if (in.ranks == 1) {
    c.reason = "one rank: no parallel layout";
    return c;
  }
  // Rule 1: CFG-parallel on two halves when the ranks are even.
  l.cfg = in.ranks % 2 == 0 ? 2 : 1;
  std::string why = l.cfg == 2 ? concat("cfg-parallel 2: ", in.ranks, " ranks are even (rule 1)")
                               : concat("no cfg-parallel: ", in.ranks, " ranks are odd (rule 1)");
  const int n = in.ranks / l.cfg;
  // Rule 2: Ulysses, the largest degree dividing n, the heads and (several hosts) a host's ranks.
  int cap = std::gcd(n, in.heads);
  if (several_nodes(in)) cap = std::gcd(cap, in.ranks_per_node);
  l.ulysses = cap;
  l.ring = n / l.ulysses;
  if (n > 1) {
    why += concat("; ulysses ", l.ulysses, ": the largest degree dividing the ", n, " rank", n == 1 ? "" : "s",
                  " per branch and the ", in.heads, " heads");
    if (several_nodes(in)) why += concat(" within a ", in.unit, "'s ", in.ranks_per_node, " ranks");
    why += " (rule 2)";
    if (l.ring > 1) why += concat("; ring ", l.ring, ": the rest (rule 3)");
  }
  if (!in.grouping.empty()) why += "; " + in.grouping;
  c.reason = why;
  return c;
}

// One kind of link; an unmeasured kind borrows the other's figures.
const LinkSpeed& kind(const LayoutInputs& in, bool across) {
  const LinkSpeed& w = in.links.within;
  const LinkSpeed& x = in.links.across;
  if (across) return x.measured() ? x : w;
  return w.measured() ? w : x;
}

// The link between global ranks a and b.
const LinkSpeed& link(const LayoutInputs& in, int a, int b, bool* across) {
  const int m = in.ranks_per_node;
  *across = m > 0 && a / m != b / m;
  return kind(in, *across);
}

// Seconds to move `bytes` over `s` (0 when neither kind of link was measured).
double transfer_s(const LinkSpeed& s, double bytes) { return s.measured() ? bytes / s.bytes_per_s : 0; }
}  // namespace

std::string units(const std::string& unit) { return unit == "process" ? "processes" : unit + "s"; }

std::string links_text(const MeasuredLinks& m, const std::string& unit) {
  auto speed = [](const LinkSpeed& s) {
    return concat(fmt("%.3g GB/s, ", s.bytes_per_s / 1e9), fmt("%.3g us", s.latency_s * 1e6));
  };
  std::string t;
  if (m.within.measured()) t += concat("within a ", unit, " ", speed(m.within));
  if (m.across.measured()) {
    t += concat(t.empty() ? "" : "; ", "across ", units(unit), " ", speed(m.across));
    if (m.within.measured()) {
      const double ratio = m.within.bytes_per_s / m.across.bytes_per_s;
      t += ratio >= 1 ? fmt(" (%.3gx slower)", ratio) : fmt(" (%.3gx faster)", 1 / ratio);
    }
  }
  if (m.flops_per_s > 0)
    t += concat(t.empty() ? "" : "; ",
                m.flops_per_s >= 1e12 ? fmt("compute %.3g TFLOP/s", m.flops_per_s / 1e12)
                                      : fmt("compute %.3g GFLOP/s", m.flops_per_s / 1e9),
                fmt(" (probe %.3g ms)", m.probe_s * 1e3));
  return t.empty() ? "nothing measured" : t;
}

LayoutCost layout_cost(const LayoutInputs& in, const ParallelLayout& l) {
  LayoutCost c;
  c.layout = l;
  if (in.dim <= 0 || in.layers <= 0) fail("layout model: the DiT's dim and layers are needed, got ", in.dim, " and ", in.layers);
  const int u = l.ulysses, r = l.ring, sp = u * r, world = l.devices;
  const double T = double(in.tokens > 0 ? in.tokens : kReferenceTokens);
  const double Ls = std::ceil(T / sp), D = double(in.dim), F = double(in.ffn_dim), L = double(in.layers), e = in.elem_bytes;
  const double P = l.cfg == 2 ? 1 : 2;  // DiT passes per rank per step (cfg scale != 1)
  // Flops per rank per step: per block, the linears (self q, k, v, o; cross q, o; the FFN) on Ls
  // tokens and self-attention of Ls queries over the padded sp * Ls keys.
  const double flops = P * L * (2 * Ls * (6 * D * D + 2 * D * F) + 4 * Ls * (sp * Ls) * D);
  if (in.links.flops_per_s > 0) c.compute_s = flops / in.links.flops_per_s;
  const int groups = u > 1 ? int(ulysses_head_groups(in.heads / u)) : 1;
  double worst = 0, worst_across = 0;
  for (int g = 0; g < world; ++g) {
    const int base = g / sp * sp, sp_rank = g % sp, ri = sp_rank / u, ui = sp_rank % u;
    double t = 0, tx = 0;
    bool x = false;
    if (u > 1) {  // all-to-all of q, k, v and the output: 4 * D * Ls * e handed, 1/u to each member
      const double chunk = 4 * D * Ls * e / u;
      double tu = 0, tux = 0;
      bool any_across = false;
      for (int k = 0; k < u; ++k) {
        const int h = base + ri * u + k;
        if (h == g) continue;
        const double s = transfer_s(link(in, g, h, &x), chunk);
        tu += s, any_across |= x;
        if (x) tux += s;
      }
      const double calls = 2.0 * groups * kind(in, any_across).latency_s;
      t += P * L * (tu + calls), tx += P * L * (tux + (any_across ? calls : 0));
    }
    if (r > 1) {  // r - 1 passes of K and V (2 * D * Ls * e), paced by the ring's slowest hop
      double hop = 0;
      bool hop_across = false;
      for (int j = 0; j < r; ++j) {
        const int a = base + j * u + ui, b = base + (j + 1) % r * u + ui;
        const LinkSpeed& s = link(in, a, b, &x);
        const double h = transfer_s(s, 2 * D * Ls * e) + groups * s.latency_s;
        if (h > hop) hop = h, hop_across = x;
      }
      t += P * L * (r - 1) * hop;
      if (hop_across) tx += P * L * (r - 1) * hop;
    }
    if (sp > 1) {  // the head output's all-gather over the branch: Ls * 64 * e per member
      double slow = 0;
      bool gx = false;
      for (int k = 0; k < sp; ++k)
        if (base + k != g) {
          const LinkSpeed& s = link(in, g, base + k, &x);
          const double h = transfer_s(s, (sp - 1) * Ls * 64 * e) + s.latency_s;
          if (h > slow) slow = h, gx = x;
        }
      t += P * slow;
      if (gx) tx += P * slow;
    }
    if (l.cfg == 2) {  // the float32 velocity's all-gather with the other branch: 16 x 4 T x 4 bytes
      const LinkSpeed& s = link(in, g, (g + sp) % world, &x);
      const double h = transfer_s(s, 256 * T) + s.latency_s;
      t += h;
      if (x) tx += h;
    }
    if (t > worst) worst = t, worst_across = tx;
  }
  c.comm_s = worst, c.across_s = worst_across;
  return c;
}

std::vector<ParallelLayout> layout_candidates(const LayoutInputs& in) {
  std::vector<ParallelLayout> out;
  for (int cfg : {2, 1}) {
    if (in.ranks % cfg != 0 || (cfg == 2 && in.ranks < 2)) continue;
    const int n = in.ranks / cfg;
    if (in.tokens > 0 && n > in.tokens) continue;  // ranks beyond tokens
    for (int u = n; u >= 1; --u)
      if (n % u == 0 && in.heads % u == 0) out.push_back({in.ranks, u, n / u, cfg});
  }
  return out;
}

LayoutChoice auto_layout(const LayoutInputs& in) {
  if (in.ranks < 1) fail("layout auto: needs at least one rank, got ", in.ranks);
  if (in.heads < 1) fail("layout auto: the DiT has no attention heads (", in.heads, ")");
  if (in.ranks_per_node < 0 || (in.ranks_per_node > 0 && in.ranks % in.ranks_per_node != 0))
    fail("layout auto: ", in.ranks, " ranks are not whole ", units(in.unit), " of ", in.ranks_per_node);
  LayoutChoice c = rule_layout(in);
  if (in.tokens > 0) check_layout_tokens(c.layout, in.tokens);
  if (in.ranks == 1 || in.dim <= 0 || !in.links.measured()) return c;
  // Rule 4: only a slow boundary between hosts lets the step-time model overrule rules 1-3.
  const std::string links = links_text(in.links, in.unit), across = "across " + units(in.unit);
  const LayoutCost rule = layout_cost(in, c.layout);
  const int64_t tokens = in.tokens > 0 ? in.tokens : kReferenceTokens;
  auto modelled = [&](const LayoutCost& k) {
    return concat(fmt("%.3g s per step at ", k.step_s()), tokens, fmt(" tokens (compute %.3g s, comm ", k.compute_s),
                  fmt("%.3g s, ", k.comm_s), fmt("%.3g s of it ", k.across_s), across, ")");
  };
  if (!several_nodes(in) || !in.links.slow_boundary()) {
    const std::string why = !several_nodes(in) ? "one " + in.unit
                            : !in.links.within.measured() || !in.links.across.measured()
                                ? concat("links within and ", across, " not both measured (one rank per ", in.unit, ")")
                                : concat(across, " less than ", fmt("%.3g", kSlowLink), "x slower than within");
    c.reason += concat("; links: ", links, ": ", why, ", rules 1-3 stand (rule 4); modelled ", modelled(rule));
    return c;
  }
  LayoutCost best = rule;
  for (const ParallelLayout& l : layout_candidates(in)) {
    const LayoutCost k = layout_cost(in, l);
    if (k.step_s() < best.step_s()) best = k;
  }
  if (best.step_s() * kClearGain > rule.step_s()) {
    c.reason += concat("; links: ", links, ": rules 1-3's pick models ", modelled(rule), ", within ",
                       fmt("%.3g", kClearGain), "x of the fastest layout (rule 4)");
    return c;
  }
  LayoutChoice b;
  b.layout = best.layout;
  b.reason = concat(degrees(best.layout), ": the fastest modelled layout on these links (", links, "): ",
                    modelled(best), " against ", fmt("%.3g s", rule.step_s()), " for rules 1-3's ", degrees(rule.layout),
                    " (rule 4)");
  if (!in.grouping.empty()) b.reason += "; " + in.grouping;
  return b;
}

void check_layout_tokens(const ParallelLayout& l, int64_t tokens) {
  const int sp = l.sequence_parallel();
  if (tokens < sp)
    fail("layout ulysses ", l.ulysses, " x ring ", l.ring, " x cfg ", l.cfg, ": ", sp, " sequence-parallel ranks but only ",
         tokens, " tokens in this video's DiT sequence (ranks beyond tokens: every rank needs at least one); use fewer "
         "ranks or a larger video");
}

std::string review_layout(const LayoutInputs& in, const ParallelLayout& l) {
  if (l.ulysses < 1 || in.heads % l.ulysses != 0)
    fail("layout ulysses ", l.ulysses, " x ring ", l.ring, " x cfg ", l.cfg, ": ulysses ", l.ulysses,
         " does not divide the DiT's ", in.heads, " heads (heads not divisible: each Ulysses rank takes whole heads)");
  if (in.tokens > 0) check_layout_tokens(l, in.tokens);
  if (l.ring < 2 || in.dim <= 0 || !several_nodes(in) || !in.links.slow_boundary()) return "";
  bool across = false, x = false;
  const int sp = l.sequence_parallel();
  for (int g = 0; g < l.devices && !across; ++g) {
    const int base = g / sp * sp, sp_rank = g % sp;
    const int next = base + (sp_rank / l.ulysses + 1) % l.ring * l.ulysses + sp_rank % l.ulysses;
    link(in, g, next, &x);
    across = x;
  }
  if (!across) return "";
  const LayoutChoice pick = auto_layout(in);
  const LayoutCost mine = layout_cost(in, l), theirs = layout_cost(in, pick.layout);
  if (mine.step_s() < kClearGain * theirs.step_s()) return "";
  return concat("layout ", degrees(l), " runs its ring across ", units(in.unit), " over a slow link (",
                links_text(in.links, in.unit), ") where layout auto's ", degrees(pick.layout), " keeps more within ",
                units(in.unit), ": modelled ",
                fmt("%.3g s", mine.step_s()), fmt(" per step against %.3g s", theirs.step_s()),
                " (ring across a slow link, rule 4); give --layout auto or those degrees");
}

}  // namespace wan

#include "parallel/preflight.h"

#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <thread>

#include "common/cuda.h"
#include "common/error.h"
#include "common/log.h"
#include "kernels/attention.h"
#include "parallel/c10d_compat.h"
#include "parallel/link_check.h"

namespace wan {

using Clock = std::chrono::steady_clock;

namespace {
// The version of what nodes exchange (store keys, collective order): bumped when it changes.
constexpr int kWire = 1;

std::string this_host() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0 || !name[0]) return "localhost";
  return name;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};


std::string ranks_of(int node, int local) {
  const int first = node * local;
  return local == 1 ? concat("rank ", first) : concat("ranks ", first, "-", first + local - 1);
}

constexpr char kSep = '\x1f';
std::string encode(const PreflightNode& n) {
  return concat(n.node, kSep, n.first_rank, kSep, n.host, kSep, n.devices, kSep, n.build, kSep, n.model, kSep, n.pid);
}
PreflightNode decode(const std::string& s, int node) {
  std::vector<std::string> f;
  std::string cur;
  for (char c : s) {
    if (c == kSep) f.push_back(cur), cur.clear();
    else cur += c;
  }
  f.push_back(cur);
  if (f.size() != 7) fail("pre-flight: node ", node, " published an unreadable record (another wanlab version?)");
  PreflightNode n;
  n.node = std::atoi(f[0].c_str()), n.first_rank = std::atoi(f[1].c_str());
  n.host = f[2], n.devices = f[3], n.build = f[4], n.model = f[5], n.pid = std::atol(f[6].c_str());
  return n;
}

std::string describe(const PreflightNode& n, int local) {
  return concat("node ", n.node, " (", ranks_of(n.node, local), ", host ", n.host, ", ", n.devices, ")");
}

// The address peers reach this process's Gloo at (loopback when the store is on loopback).
std::string gloo_host(const std::string& store_host) {
  return store_host == "127.0.0.1" || store_host == "localhost" ? "127.0.0.1" : this_host();
}

// What one rank measures for layout auto, then the group's figures: every rank all-gathers every
// rank's, and takes the lowest bandwidth and flops and the highest latency (the same numbers on
// every node, so every node picks the same layout).
struct Measured {
  MeasuredLinks links;
  double a2a_within_s = 0, a2a_group_s = 0;
};
// `per_host`: the ranks of one host (HostGrouping), consecutive: within = among them, across = to
// the same rank of the next host.
Measured measure(const PreflightOptions& o, Communicator& world_comm, RankContext& ctx, const Rendezvous& rdv,
                 const std::string& gloo, int per_host) {
  constexpr int64_t kSmall = 4096, kLarge = 512 << 10, kAllToAll = 64 << 10;
  constexpr int kReps = 3;
  const int world = int(o.devices.size()) * o.nnodes, g = ctx.rank, h = per_host, i = g % h;
  // v: within bytes/s, latency; across bytes/s, latency; flops/s; probe s; all-to-all within, group
  std::vector<float> v(8, 0.f);
  auto speed = [&](Communicator& c, int to, int from, float* bw, float* lat) {
    int64_t sent = 0;
    *lat = float(time_collective(c, 2, kSmall, kReps, to, from, ctx.device));
    const double t = time_collective(c, 2, kLarge, kReps, to, from, ctx.device, &sent);
    *bw = float(double(sent) / t);
  };
  if (h >= 2) {
    std::vector<int> host(h);
    for (int k = 0; k < h; ++k) host[k] = g - i + k;
    Communicator hc(ctx, rdv, "preflight-host", host, "preflight", gloo);
    speed(hc, (i + 1) % h, (i + h - 1) % h, &v[0], &v[1]);
    v[6] = float(time_collective(hc, 0, kAllToAll, kReps, 0, 0, ctx.device));
  }
  if (world > h) speed(world_comm, (g + h) % world, (g + world - h) % world, &v[2], &v[3]);
  if (o.nnodes >= 2) v[7] = float(time_collective(world_comm, 0, kAllToAll, kReps, 0, 0, ctx.device));
  {  // the compute probe: self-attention of 128 tokens, 2 heads at the DiT's head dim
    const int64_t hd = o.probe_head_dim, n = 128, heads = 2;
    const auto opts = at::TensorOptions().dtype(ctx.device.is_cuda() ? at::kBFloat16 : at::kFloat).device(ctx.device);
    const at::Tensor q = at::rand({1, heads, n, hd}, opts);
    attention(q, q, q).cpu();  // warm-up
    const auto t0 = Clock::now();
    for (int r = 0; r < 2; ++r) attention(q, q, q).cpu();
    const double s = since(t0) / 2;
    v[4] = float(4.0 * heads * n * n * hd / s), v[5] = float(s);
  }
  const at::Tensor all = world_comm.all_gather(at::tensor(v).to(ctx.device), "pre-flight measurements").cpu();
  Measured m;
  auto lowest = [&](int k) {
    double x = 0;
    for (int j = 0; j < world; ++j) x = j == 0 ? all[j][k].item<float>() : std::min<double>(x, all[j][k].item<float>());
    return x;
  };
  auto highest = [&](int k) {
    double x = 0;
    for (int j = 0; j < world; ++j) x = std::max<double>(x, all[j][k].item<float>());
    return x;
  };
  m.links.within = {lowest(0), highest(1)};
  m.links.across = {lowest(2), highest(3)};
  m.links.flops_per_s = lowest(4), m.links.probe_s = highest(5);
  m.a2a_within_s = highest(6), m.a2a_group_s = highest(7);
  return m;
}

// One rank's smoke collectives on its device: "" when all arrived as sent, else what failed.
// probe_head_dim > 0: then what layout auto weighs, into *measured.
std::string smoke(const PreflightOptions& o, int local_index, const std::string& store_host, uint16_t store_port,
                  std::chrono::milliseconds left, int per_host, Measured* measured) {
  const int local = int(o.devices.size()), world = local * o.nnodes, g = o.node_rank * local + local_index;
  const DeviceSpec& d = o.devices[local_index];
  RankContext ctx;
  ctx.rank = g, ctx.world = world, ctx.device = aten_device(d);
  ctx.device_name = concat(d.type, ":", d.index);
  ctx.timeout = left;
  ctx.where = "pre-flight";
  ctx.transport = o.transport;
  try {
    auto rdv = Rendezvous::join(store_host, store_port, left);
    std::vector<int> all(world);
    for (int i = 0; i < world; ++i) all[i] = i;
    Communicator c(ctx, *rdv, "preflight", all, "preflight", gloo_host(store_host));
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(ctx.device);
    // all_gather: row j holds j.
    at::Tensor got = c.all_gather(at::full({4}, float(g), opts), "pre-flight all_gather").cpu();
    for (int j = 0; j < world; ++j)
      if (got[j][0].item<float>() != float(j))
        return concat("all_gather gave ", got[j][0].item<float>(), " from rank ", j, " (expected ", j, ")");
    // all_to_all: block j of rank g holds g * world + j; block j received holds j * world + g.
    at::Tensor x = (at::arange(world, opts) + float(g * world)).repeat_interleave(2);
    at::Tensor y = c.all_to_all(x, "pre-flight all_to_all").cpu();
    for (int j = 0; j < world; ++j)
      if (y[2 * j].item<float>() != float(j * world + g))
        return concat("all_to_all gave ", y[2 * j].item<float>(), " from rank ", j, " (expected ", j * world + g, ")");
    // send/recv around the ring: each rank receives its predecessor's rank.
    const int from = (g + world - 1) % world;
    at::Tensor r = c.exchange(at::full({4}, float(g), opts), (g + 1) % world, from, "pre-flight send/recv").cpu();
    if (r[0].item<float>() != float(from))
      return concat("send/recv gave ", r[0].item<float>(), " from rank ", from, " (expected ", from, ")");
    c.barrier("pre-flight barrier");
    if (o.probe_head_dim > 0) *measured = measure(o, c, ctx, *rdv, gloo_host(store_host), per_host);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

std::string engine_build() {
  return concat("libtorch ", TORCH_VERSION, cuda_built() ? " CUDA" : " CPU-only",
                c10d_compat::kHaveNccl ? " NCCL" : "", ", ", __VERSION__, ", wire ", kWire);
}

std::string weights_fingerprint(const LoadedModel& m) {
  Fnv f;
  size_t n = 0;
  for (const TensorMap* map : {&m.dit, &m.t5, &m.vae})
    for (const auto& [name, t] : *map) {
      ++n;
      f.add(name);
      f.add(dtype_name(t.dtype));
      if (!t.data.defined()) continue;
      for (int64_t s : t.data.sizes()) f.add(&s, sizeof s);
      if (!t.data.is_cpu() || !t.data.is_contiguous() || t.data.numel() == 0) continue;
      const auto* p = static_cast<const uint8_t*>(t.data.data_ptr());
      const size_t bytes = size_t(t.data.numel()) * t.data.element_size(), k = std::min<size_t>(64, bytes);
      f.add(p, k);
      f.add(p + bytes - k, k);
    }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return concat(hex, " (", n, " tensors)");
}

HostGrouping group_by_host(const std::vector<PreflightNode>& nodes, int local) {
  // The hosts in node order, each with its processes; a host met again after another is not consecutive.
  std::vector<std::pair<std::string, int>> hosts;
  std::string split;
  for (const PreflightNode& n : nodes) {
    if (!hosts.empty() && hosts.back().first == n.host) {
      ++hosts.back().second;
      continue;
    }
    for (const auto& h : hosts)
      if (h.first == n.host && split.empty()) split = concat("host ", n.host, "'s ranks are not consecutive (node ", n.node, ")");
    hosts.push_back({n.host, 1});
  }
  std::string unequal;
  for (const auto& h : hosts)
    if (h.second != hosts[0].second) {
      for (const auto& k : hosts) unequal += concat(unequal.empty() ? "" : ", ", k.first, " ", k.second * local);
      unequal = concat("hosts hold unequal ranks (", unequal, ")");
      break;
    }
  const char* from = "from the hosts the pre-flight exchanged";
  HostGrouping g;
  if (!split.empty() || !unequal.empty()) {
    g.ranks_per_node = local, g.unit = "process";
    g.text = concat(local, " rank", local == 1 ? "" : "s", " per process, not per host: ", split.empty() ? unequal : split,
                    " (", from, ")");
    return g;
  }
  const int procs = hosts[0].second;
  g.ranks_per_node = procs * local;
  g.text = concat(g.ranks_per_node, " rank", g.ranks_per_node == 1 ? "" : "s", " per host (",
                  hosts.size() == 1 ? concat("all on host ", hosts[0].first) : concat(hosts.size(), " hosts"), ", ", procs,
                  " process", procs == 1 ? "" : "es", hosts.size() == 1 ? "" : " each", "; ", from, ")");
  return g;
}

PreflightResult preflight(const PreflightOptions& o) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + o.timeout;
  const int local = int(o.devices.size());
  if (local < 1) fail("pre-flight: no devices");
  const double limit_s = o.timeout.count() / 1000.0;
  const std::string addr = concat(o.host, ":", o.port);
  PreflightNode me;
  me.node = o.node_rank, me.first_rank = o.node_rank * local, me.host = o.host_name.empty() ? this_host() : o.host_name;
  me.devices = format_devices(o.devices), me.build = engine_build(), me.model = o.model, me.pid = long(getpid());
  const std::string here = describe(me, local);
  auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };

  PreflightResult r;
  try {
    r.store = o.node_rank == 0 ? Rendezvous::serve(o.host, uint16_t(o.port), o.timeout)
                               : Rendezvous::join(o.host, uint16_t(o.port), o.timeout);
  } catch (const std::exception& e) {
    if (o.node_rank == 0) fail("pre-flight: ", here, " cannot serve the rendezvous store at ", addr, ": ", e.what());
    fail("pre-flight: node 0 (rank 0) never answered at ", addr, " within ", limit_s, " s (it did not start, or the ",
         "address is wrong or unreachable); here: ", here, ": ", e.what());
  }
  const std::string key = "preflight/node/";
  std::vector<std::string> records(o.nnodes);
  auto missing_text = [&] {  // the nodes not seen yet
    std::string who;
    for (int k = 0; k < o.nnodes; ++k)
      if (records[k].empty()) who += concat(who.empty() ? "" : ", ", ranks_of(k, local), " (node ", k, ")");
    return who;
  };
  try {
    r.store->set(key + std::to_string(o.node_rank), encode(me));
    // Every node's record, within the timeout.
    for (;;) {
      for (int k = 0; k < o.nnodes; ++k)
        if (records[k].empty() && r.store->check(key + std::to_string(k))) records[k] = r.store->get(key + std::to_string(k));
      if (missing_text().empty()) break;
      if (Clock::now() >= deadline) {
        std::string joined;
        for (int k = 0; k < o.nnodes; ++k)
          if (!records[k].empty()) joined += concat(joined.empty() ? "" : "; ", describe(decode(records[k], k), local));
        fail("pre-flight: ", missing_text(), " never joined the rendezvous at ", addr,
             " within ", limit_s, " s (not started, crashed before joining, or cannot reach ", addr, "); joined: ",
             joined, ". No weights were loaded");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    r.store->add("preflight/read", 1);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // Node 0 left: it fails on its own when a rank never joins, so name the ones still missing.
    fail("pre-flight: ", here, ": the rendezvous store at ", addr, " stopped answering (node 0 exited",
         missing_text().empty() ? "" : concat("; not joined by then: ", missing_text()), "): ", e.what(),
         ". No weights were loaded");
  }
  // Everyone has read everyone's record before any node may fail on it (node 0 holds the store);
  // a store gone now is node 0 leaving after the last read: this node has what it needs.
  try {
    while (r.store->add("preflight/read", 0) < o.nnodes && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } catch (const std::exception&) {
  }
  r.meet_s = since(t0);
  for (int k = 0; k < o.nnodes; ++k) r.nodes.push_back(decode(records[k], k));
  r.hosts = group_by_host(r.nodes, local);
  // Every node compares against node 0 (each reaches the same verdict).
  const PreflightNode& n0 = r.nodes[0];
  for (const auto& n : r.nodes) {
    if (n.build != n0.build)
      fail("pre-flight: ", describe(n, local), " runs engine build '", n.build, "' but ", describe(n0, local), " runs '",
           n0.build, "'; install the same wanlab on every node");
    if (!n.model.empty() && !n0.model.empty() && n.model != n0.model)
      fail("pre-flight: ", describe(n, local), " loaded a different model (fingerprint ", n.model, ") than ",
           describe(n0, local), " (", n0.model, "); every node needs the same checkpoint");
  }
  // Two ranks on one host naming the same GPU (NCCL refuses it: one GPU per rank). Sharing one on
  // purpose runs on Gloo: a node's cuda:KxN, or processes that chose --transport gloo.
  for (size_t a = 0; a < r.nodes.size(); ++a)
    for (size_t b = a; b < r.nodes.size(); ++b) {
      if (r.nodes[a].host != r.nodes[b].host) continue;
      const auto da = parse_devices(r.nodes[a].devices), db = parse_devices(r.nodes[b].devices);
      if (a == b ? shares_device(da) : o.transport == Transport::Gloo) continue;
      for (size_t i = 0; i < da.size(); ++i)
        for (size_t j = a == b ? i + 1 : 0; j < db.size(); ++j)
          if (da[i].type == "cuda" && db[j].type == "cuda" && da[i].index == db[j].index)
            fail("pre-flight: rank ", r.nodes[a].first_rank + int(i), " and rank ", r.nodes[b].first_rank + int(j),
                 " both use cuda:", da[i].index, " on host ", r.nodes[a].host,
                 "; each rank needs its own GPU (launched with LOCAL_RANK, each process takes cuda:LOCAL_RANK)");
        }
  // The smoke collectives, one thread per local rank.
  const auto t1 = Clock::now();
  std::vector<std::string> errs(local);
  std::vector<Measured> measured(local);
  {
    std::vector<std::thread> ts;
    const auto remaining = left();
    for (int i = 0; i < local; ++i)
      ts.emplace_back([&, i] { errs[i] = smoke(o, i, o.host, r.store->port(), remaining, r.hosts.ranks_per_node, &measured[i]); });
    for (auto& t : ts) t.join();
  }
  for (int i = 0; i < local; ++i)
    if (!errs[i].empty())
      fail("pre-flight on host ", me.host, ": rank ", me.first_rank + i, " (", o.devices[i].type, ":", o.devices[i].index,
           "): ", errs[i], ". No weights were loaded");
  r.collectives_s = since(t1);
  log_info("pre-flight: ", o.nnodes, " nodes met in ", r.meet_s, " s, same build and model; collectives ok in ",
           r.collectives_s, " s");
  if (o.probe_head_dim > 0) {
    r.links = measured[0].links;
    r.all_to_all_within_s = measured[0].a2a_within_s, r.all_to_all_group_s = measured[0].a2a_group_s;
    log_info("pre-flight links (", r.hosts.text, "): ", links_text(r.links, r.hosts.unit), "; 64 KiB all-to-all ",
             r.all_to_all_within_s > 0 ? concat(r.all_to_all_within_s * 1e3, " ms within a ", r.hosts.unit, ", ")
                                       : std::string(),
             r.all_to_all_group_s * 1e3, " ms over the group");
  }
  return r;
}

}  // namespace wan

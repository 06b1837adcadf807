#include "parallel/link_check.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/error.h"

namespace wan {

using Clock = std::chrono::steady_clock;

namespace {
// The address peers reach this process's Gloo at (loopback when the store is on loopback).
std::string gloo_host_for(const std::string& store_host) {
  if (store_host == "127.0.0.1" || store_host == "localhost") return "127.0.0.1";
  char name[256] = {0};
  return gethostname(name, sizeof(name) - 1) == 0 && name[0] ? std::string(name) : std::string("127.0.0.1");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

double time_collective(Communicator& c, int op, int64_t bytes, int reps, int to, int from, const at::Device& device,
                       int64_t* sent) {
  // float32 elements, a multiple of the group (all-to-all splits dim 0 evenly)
  const int size = c.size();
  const int64_t n = std::max<int64_t>(size, bytes / 4 / size * size);
  if (sent) *sent = n * 4;
  const at::Tensor x = at::ones({n}, at::TensorOptions().dtype(at::kFloat).device(device));
  std::vector<double> per;
  for (int r = 0; r <= reps; ++r) {
    c.barrier("link check barrier");
    const auto t0 = Clock::now();
    at::Tensor y = op == 0 ? c.all_to_all(x, "link check all_to_all")
                   : op == 1 ? c.all_gather(x, "link check all_gather")
                             : c.exchange(x, to, from, "link check send/recv");
    if (device.is_cuda()) y.cpu();  // the transfer is done when its result is readable
    if (r > 0) per.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(per);
}

LinkReport check_links(const LinkCheckOptions& o) {
  if (o.reps < 1) fail("link check: reps must be at least 1, got ", o.reps);
  for (int64_t s : o.sizes)
    if (s < 4 || s > (int64_t(1) << 30)) fail("link check: message sizes must be 4 B to 1 GiB, got ", s);
  LinkReport rep;
  rep.preflight = preflight(o.group);
  const int local = int(o.group.devices.size()), world = local * o.group.nnodes;
  rep.world = world;
  const char* ops[] = {"all_to_all", "all_gather", "send/recv"};
  // times[rank][op * sizes + size] = median seconds per call
  std::vector<std::vector<double>> times(local);
  std::vector<std::string> errs(local);
  const std::string host = o.group.host;
  const uint16_t port = rep.preflight.store->port();
  std::vector<std::thread> ts;
  for (int i = 0; i < local; ++i)
    ts.emplace_back([&, i] {
      try {
        const DeviceSpec& d = o.group.devices[i];
        RankContext ctx;
        ctx.rank = o.group.node_rank * local + i, ctx.world = world, ctx.device = aten_device(d);
        ctx.device_name = concat(d.type, ":", d.index);
        ctx.timeout = o.group.timeout;
        ctx.where = "link check";
        ctx.transport = o.group.transport;
        auto rdv = Rendezvous::join(host, port, o.group.timeout);
        std::vector<int> all(world);
        for (int k = 0; k < world; ++k) all[k] = k;
        Communicator c(ctx, *rdv, "links", all, "links", gloo_host_for(host));
        const int to = (ctx.rank + 1) % world, from = (ctx.rank + world - 1) % world;
        for (int op = 0; op < 3; ++op)
          for (int64_t bytes : o.sizes) times[i].push_back(time_collective(c, op, bytes, o.reps, to, from, ctx.device));
      } catch (const std::exception& e) {
        errs[i] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < local; ++i)
    if (!errs[i].empty()) fail("link check: rank ", o.group.node_rank * local + i, ": ", errs[i]);
  size_t k = 0;
  for (int op = 0; op < 3; ++op)
    for (int64_t bytes : o.sizes) {
      double worst = 0;
      for (int i = 0; i < local; ++i) worst = std::max(worst, times[i][k]);
      const int64_t n = std::max<int64_t>(world, bytes / 4 / world * world);
      rep.measures.push_back({ops[op], n * 4, worst, worst > 0 ? double(n * 4) / worst : 0});
      ++k;
    }
  return rep;
}

}  // namespace wan

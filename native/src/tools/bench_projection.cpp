#include "tools/bench_projection.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <tuple>

#include "tools/median.h"
#include "tools/projection_model.h"
#include "common/cuda.h"
#include "common/error.h"
#include "kernels/attention.h"
#include "models/dit.h"
#include "models/latent_grid.h"
#include "models/memory_model.h"
#include "models/placement.h"
#include "models/random_weights.h"
#include "parallel/ulysses.h"

namespace wan {

std::vector<std::string> default_projection_layouts(int gpus) {
  switch (gpus) {
    case 1: return {"1"};
    case 2: return {"u2", "r2", "cfg"};
    case 4: return {"u4", "r4", "u2r2", "cfg-u2", "cfg-r2"};
    case 8: return {"u8", "r8", "u4r2", "u2r4", "cfg-u4", "cfg-u2r2", "cfg-r4"};
    case 16: return {"u8r2", "r16", "u4r4", "cfg-u8", "cfg-u4r2"};
    default: fail("bench projection: --gpus takes 1, 2, 4, 8 and 16, got ", gpus);
  }
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// The phases of one rank's self-attention in one block, accumulated as it runs.
struct AttentionTimes {
  double attention = 0, merge = 0, total = 0;
};

// One rank's self-attention (rank 0 of its Ulysses and ring groups) as parallel/ulysses.cpp and
// parallel/ring.cpp compute it, each transfer replaced by the tensor it would deliver (an
// all-to-all and a ring exchange hand back tensors of the shapes they were given).
// q, k, v: [1, H, Ls, d] -> [1, H, Ls, d].
at::Tensor rank_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t tokens, int64_t u,
                          int64_t r, const at::Device& dev, AttentionTimes& t) {
  device_synchronize(dev);
  const auto t0 = Clock::now();
  const at::Tensor qkv = at::stack({q[0], k[0], v[0]});  // [3, H, Ls, d]
  auto attend = [&](const at::Tensor& x) {  // [3, h, u*Ls, d] -> [1, h, u*Ls, d]
    const at::Tensor qq = x.narrow(0, 0, 1), kv = x.narrow(0, 1, 2);
    const int64_t Lk = kv.size(2);
    auto a = Clock::now();
    if (r == 1) {
      const int64_t valid = std::min(tokens, Lk);
      at::Tensor o = attention(qq, kv[0].narrow(1, 0, valid).unsqueeze(0), kv[1].narrow(1, 0, valid).unsqueeze(0));
      device_synchronize(dev);
      t.attention += seconds(a, Clock::now());
      return o;
    }
    at::Tensor acc, lse;
    for (int64_t p = 0; p < r; ++p) {
      const int64_t chunk = ((-p) % r + r) % r;  // whose keys rank 0 holds at pass p
      const int64_t valid = std::max<int64_t>(0, std::min(Lk, tokens - chunk * Lk));
      if (valid == 0) continue;
      const AttentionPart part =
          attention_part(qq, kv[0].narrow(1, 0, valid).unsqueeze(0), kv[1].narrow(1, 0, valid).unsqueeze(0));
      device_synchronize(dev);
      const auto b = Clock::now();
      t.attention += seconds(a, b);
      merge_attention_part(acc, lse, part);
      device_synchronize(dev);
      a = Clock::now();
      t.merge += seconds(b, a);
    }
    at::Tensor o = acc.to(q.scalar_type());
    device_synchronize(dev);
    t.merge += seconds(a, Clock::now());
    return o;
  };
  at::Tensor o;
  if (u == 1) {
    o = attend(qkv);
  } else {
    const int64_t H = qkv.size(1), Ls = qkv.size(2), d = qkv.size(3), G = ulysses_head_groups(H / u), hc = H / u / G;
    const at::Tensor x = qkv.view({3, u, G, hc, Ls, d});
    at::Tensor out = at::empty({1, u, G, hc, Ls, d}, qkv.options());
    for (int64_t g = 0; g < G; ++g) {
      const at::Tensor got = x.select(2, g).transpose(0, 1).contiguous();  // [u, 3, hc, Ls, d], as sent and received
      const at::Tensor og = attend(got.permute({1, 2, 0, 3, 4}).reshape({3, hc, u * Ls, d}));  // [1, hc, u*Ls, d]
      const at::Tensor back = og.view({1, hc, u, Ls, d}).permute({2, 0, 1, 3, 4}).contiguous();  // [u, 1, hc, Ls, d]
      out.select(2, g).copy_(back.transpose(0, 1));
    }
    o = out.view({1, H, Ls, d});
  }
  device_synchronize(dev);
  t.total += seconds(t0, Clock::now());
  return o;
}

struct Setup {
  const ProjectionBenchOptions& o;
  Placement place;
  DitArch arch;       // blocks + 1 layers
  TensorMap weights;  // random, stored bf16, on the device
  at::Tensor x, context;
  int64_t tokens = 0;
};

// The phases of rank 0 of a layout with ulysses u, ring r (weights sharded over u r when `shard`),
// medians over iters x blocks.
RankCompute measure_rank(const Setup& s, int64_t u, int64_t r, bool shard, nlohmann::json& samples) {
  c10::InferenceMode guard;
  const int64_t sp = u * r, K = s.arch.num_layers - 1;  // the last block is run, not timed
  const at::Device dev = s.place.device;
  DitOptions dopt;
  dopt.placement = s.place;
  if (shard && sp > 1) dopt.weight_shard = 0, dopt.weight_shards = int(sp);
  const WanDiT dit(s.weights, s.arch, dopt);

  std::vector<AttentionTimes> att;     // per block of the current forward
  std::vector<Clock::time_point> start;  // when each block began
  int64_t current = -1;
  DitHooks hooks;
  hooks.in_block = [&](int64_t block, int64_t) {
    if (block == current) return;  // a check point inside the block
    device_synchronize(dev);
    start.push_back(Clock::now());
    current = block;
  };
  DitShard shard_cb;
  shard_cb.rank = 0, shard_cb.size = sp;
  shard_cb.attention = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t tokens) {
    att.resize(std::max<size_t>(att.size(), size_t(current + 1)));
    return rank_attention(q, k, v, tokens, u, r, dev, att[size_t(current)]);
  };
  shard_cb.gather = [sp](const at::Tensor& x) { return x.repeat({1, sp, 1}); };  // [1, Ls, C] -> [1, sp*Ls, C]
  shard_cb.gather_weights = [sp](const at::Tensor& part) -> DitShard::Waiter {  // [S] -> [sp, S]
    return [part, sp] { return part.unsqueeze(0).expand({sp, part.size(0)}).contiguous(); };
  };
  // One rank alone: the forward has no seam for its attention, which is timed apart at its shape.
  double alone_attention = 0;
  if (sp == 1) {
    const int64_t H = s.arch.num_heads, d = s.arch.dim / H;
    at::Generator g = seeded_generator(dev, s.o.seed + 7);
    auto opt = at::TensorOptions().device(dev);
    // [1, L, H, d] viewed as [1, H, L, d], as WanDiT::self_attention hands them to attention().
    auto input = [&] { return at::randn({1, s.tokens, H, d}, g, opt).to(s.place.dtype).transpose(1, 2); };
    const at::Tensor q = input(), k = input(), v = input();
    std::vector<double> t;
    for (int i = -s.o.warmup; i < s.o.iters; ++i) {
      device_synchronize(dev);
      const auto t0 = Clock::now();
      const at::Tensor o = attention(q, k, v);
      device_synchronize(dev);
      if (i >= 0) t.push_back(seconds(t0, Clock::now()));
    }
    alone_attention = median_of(t);
  }
  std::vector<double> other, attention, merge, copies, outside, forward;
  for (int i = -s.o.warmup; i < s.o.iters; ++i) {
    att.clear(), start.clear(), current = -1;
    device_synchronize(dev);
    const auto t0 = Clock::now();
    at::Tensor out = sp > 1 ? dit.forward(s.x, 500, s.context, shard_cb, nullptr, &hooks)
                            : dit.forward(s.x, 500, s.context, nullptr, &hooks);
    device_synchronize(dev);
    const double total = seconds(t0, Clock::now());
    if (i < 0) continue;
    if (int64_t(start.size()) != K + 1) fail("bench projection: saw ", start.size(), " blocks start, expected ", K + 1);
    double blocks = 0;
    for (int64_t b = 0; b < K; ++b) {
      const double block = seconds(start[size_t(b)], start[size_t(b + 1)]);
      blocks += block;
      const AttentionTimes a = sp > 1 ? att.at(size_t(b)) : AttentionTimes{alone_attention, 0, alone_attention};
      other.push_back(block - a.total);
      attention.push_back(a.attention);
      merge.push_back(a.merge);
      copies.push_back(a.total - a.attention - a.merge);
    }
    forward.push_back(total);
    outside.push_back(total - blocks * double(K + 1) / double(K));  // the untimed last block at the mean
  }
  RankCompute c;
  c.other_s = std::max(0.0, median_of(other));
  c.attention_s = median_of(attention);
  c.merge_s = median_of(merge);
  c.copies_s = std::max(0.0, median_of(copies));
  c.outside_s = std::max(0.0, median_of(outside));
  samples = {{"forward_s", forward}, {"blocks_per_forward", K + 1}, {"timed_blocks_per_forward", K},
             {"other_s", other}, {"attention_s", attention}, {"merge_s", merge}, {"copies_s", copies}};
  if (sp == 1) samples["attention_timed_apart"] = true;
  return c;
}

nlohmann::json compute_json(const RankCompute& c, const Projection& p, int64_t layers, const std::string& from) {
  return {{"block_other_s", c.other_s},
          {"block_attention_s", c.attention_s},
          {"block_ring_merge_s", c.merge_s},
          {"block_ulysses_copies_s", c.copies_s},
          {"block_compute_s", p.block_compute_s},
          {"forward_outside_blocks_s", c.outside_s},
          {"per_step_s", p.measured_per_step_s},
          {"per_step_formula", concat(p.passes, " passes x (", layers, " layers x block_compute_s + forward_outside_blocks_s)")},
          {"rank_shape", from}};
}

// A previous run's measurements (--measured FILE): its rank shapes' compute by (u, r, sharded),
// refused unless it ran the same model and video.
struct Measured {
  std::map<std::tuple<int64_t, int64_t, bool>, RankCompute> compute;
  nlohmann::json json;
};
Measured read_measured(const std::string& file, const ProjectionBenchOptions& o, const DitArch& a) {
  std::ifstream in(file);
  if (!in) fail("bench projection: cannot read --measured ", file);
  Measured m;
  try {
    m.json = nlohmann::json::parse(in);
    if (m.json.value("bench", "") != "projection") fail("not the JSON of `wanlab-engine bench projection`");
    const auto& v = m.json.at("video");
    if (m.json.at("dims") != o.dims || m.json.at("arch").at("heads") != a.num_heads || v.at("height") != o.height ||
        v.at("width") != o.width || v.at("frames") != o.frames)
      fail("it measured ", m.json.at("dims").get<std::string>(), " with ", m.json.at("arch").at("heads"), " heads at ",
           v.at("height"), "x", v.at("width"), "x", v.at("frames"), ", not ", o.dims, " with ", a.num_heads, " heads at ",
           o.height, "x", o.width, "x", o.frames);
    for (const auto& r : m.json.at("layouts")) {
      const auto& c = r.at("measured");
      m.compute[std::make_tuple(r.at("ulysses").get<int64_t>(), r.at("ring").get<int64_t>(), r.at("shard_weights").get<bool>())] =
          RankCompute{c.at("block_other_s").get<double>(), c.at("block_attention_s").get<double>(),
                      c.at("block_ring_merge_s").get<double>(), c.at("block_ulysses_copies_s").get<double>(),
                      c.at("forward_outside_blocks_s").get<double>()};
    }
  } catch (const nlohmann::json::exception& e) {
    fail("bench projection: --measured ", file, ": ", e.what());
  } catch (const Error& e) {
    fail("bench projection: --measured ", file, ": ", e.what());
  }
  return m;
}

}  // namespace

nlohmann::json bench_projection(const ProjectionBenchOptions& o) {
  if (o.threads < 0) fail("bench projection: --threads must be >= 0, got ", o.threads);
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (o.warmup < 0 || o.iters < 1 || o.blocks < 1 || o.steps < 1)
    fail("bench projection: need --warmup >= 0, --iters >= 1, --blocks >= 1 and --steps >= 1");
  if (o.gpus_per_node < 1) fail("bench projection: --gpus-per-node must be >= 1, got ", o.gpus_per_node);
  const ModelArch full = preset_arch(o.dims);
  DitArch a = full.dit;
  const int64_t layers = a.num_layers;
  if (o.heads > 0) {
    if (a.dim % o.heads != 0) fail("bench projection: --heads ", o.heads, " does not divide the model dim ", a.dim);
    a.num_heads = o.heads;
  }
  a.num_layers = o.blocks + 1;
  const int64_t mh = 8 * a.patch[1], mw = 8 * a.patch[2];
  if (!valid_frame_count(o.frames) || o.height < mh || o.height % mh || o.width < mw || o.width % mw)
    fail("bench projection: need --frames 4k+1 and --height, --width positive multiples of ", mh, ", got ", o.frames, "x",
         o.height, "x", o.width);
  const LatentGrid grid = latent_grid(o.frames, o.height, o.width);
  if (grid.frames % a.patch[0]) fail("bench projection: ", grid.frames, " latent frames are not a multiple of the patch");

  // The layouts: named, or the default set of each GPU count; "1" always (the speed-up's base).
  std::vector<ProjectionLayout> layouts{ProjectionLayout{}};
  auto add = [&](ProjectionLayout l) {
    if (o.shard_weights && l.sequence_parallel() > 1) l.shard_weights = true;
    for (const auto& m : layouts)
      if (projection_layout_name(m) == projection_layout_name(l)) return;
    layouts.push_back(l);
  };
  if (!o.layouts.empty()) {
    for (const auto& n : o.layouts) add(parse_projection_layout(n));
  } else {
    for (int g : o.gpus)
      for (const auto& n : default_projection_layouts(g)) add(parse_projection_layout(n));
  }
  ProjectionLinks links;
  links.intra = o.links_file.empty() ? link_preset(o.link) : [&] {
    std::ifstream in(o.links_file);
    if (!in) fail("bench projection: cannot read --links ", o.links_file);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      fail("bench projection: --links ", o.links_file, " is not JSON: ", e.what());
    }
    return link_from_doctor(j, o.links_file);
  }();
  links.inter = link_preset(o.inter_link);
  links.gpus_per_node = o.gpus_per_node;

  Setup s{o, {parse_device(o.device), at::kFloat}, a, {}, {}, {}, grid.tokens(a.patch)};
  s.place.dtype = o.dtype.empty() ? default_compute_dtype(s.place.device) : parse_compute_dtype(o.dtype);
  const Measured before = o.measured_file.empty() ? Measured{} : read_measured(o.measured_file, o, a);
  if (!o.measured_file.empty()) s.place.dtype = before.json.at("element_bytes") == 2 ? at::kBFloat16 : at::kFloat;
  const int64_t e = int64_t(c10::elementSize(s.place.dtype));
  if (o.measured_file.empty()) {
    c10::InferenceMode guard;
    for (const auto& spec : dit_specs(a))
      s.weights[spec.name] = stored(random_tensor(spec, o.seed, s.place.device).to(at::kBFloat16));
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(o.seed * 0x9E3779B97F4A7C15ull + 12345);
    s.x = at::randn({a.in_dim, grid.frames, grid.height, grid.width}, g).to(s.place.device);
    s.context = at::randn({a.text_len, a.text_dim}, g).to(s.place.device);
  }
  ProjectionShape shape;
  shape.dim = a.dim, shape.heads = a.num_heads, shape.layers = layers, shape.tokens = s.tokens;
  shape.head_channels = a.out_dim * a.patch[0] * a.patch[1] * a.patch[2];
  shape.velocity_elements = a.out_dim * grid.frames * grid.height * grid.width;
  shape.elem_bytes = e, shape.cfg = o.cfg_scale != 1;

  // Rank shapes repeat across layouts (CFG-parallel runs the rank work of its branch): measured once.
  std::map<std::tuple<int64_t, int64_t, bool>, std::pair<RankCompute, nlohmann::json>> cache;
  nlohmann::json rows = nlohmann::json::array(), skipped = nlohmann::json::array(), rank_samples = nlohmann::json::object();
  double base_step = 0;
  for (const ProjectionLayout& l : layouts) {
    const std::string name = projection_layout_name(l);
    const int64_t sp = l.sequence_parallel();
    if (a.num_heads % l.ulysses != 0 || sp > s.tokens) {
      skipped.push_back({{"layout", name}, {"gpus", l.gpus()},
                         {"reason", a.num_heads % l.ulysses ? concat("ulysses ", l.ulysses, " does not divide the ", a.num_heads, " heads")
                                                            : concat(sp, " sequence-parallel ranks but only ", s.tokens, " tokens")}});
      continue;
    }
    const bool sharded = l.shard_weights && sp > 1;
    const auto key = std::make_tuple(int64_t(l.ulysses), int64_t(l.ring), sharded);
    const std::string shape_name = concat("u", l.ulysses, " r", l.ring, sharded ? " sharded" : "");
    if (!cache.count(key) && !o.measured_file.empty()) {
      auto it = before.compute.find(key);
      if (it == before.compute.end())
        fail("bench projection: --measured ", o.measured_file, " has no measurement of rank shape ", shape_name,
             " (layout ", name, "): run it on the device with that layout");
      cache[key] = {it->second, nlohmann::json()};
    }
    if (!cache.count(key)) {
      nlohmann::json samples;
      const RankCompute c = measure_rank(s, l.ulysses, l.ring, sharded, samples);
      cache[key] = {c, samples};
      rank_samples[shape_name] = samples;
    }
    const RankCompute& c = cache[key].first;
    shape.shard_parts.clear();
    if (sharded)
      for (const ShardPart& p : dit_shard_parts(a, sp, e)) shape.shard_parts.push_back({p.elements, p.bytes_per_element});
    const Projection p = project_step(shape, l, c, links);
    if (sp == 1 && !l.cfg_parallel) base_step = p.step_s;
    rows.push_back({{"layout", name},
                    {"gpus", l.gpus()},
                    {"nodes", (l.gpus() + o.gpus_per_node - 1) / o.gpus_per_node},
                    {"ulysses", l.ulysses},
                    {"ring", l.ring},
                    {"cfg_parallel", l.cfg_parallel},
                    {"shard_weights", sharded},
                    {"step_s", p.step_s},
                    {"total_s", p.step_s * o.steps},
                    {"exposed_comm_per_step_s", p.exposed_per_step_s},
                    {"measured", compute_json(c, p, layers, shape_name)},
                    {"modelled", p.to_json()}});
  }
  for (auto& row : rows) {
    const double speedup = base_step / row["step_s"].get<double>();
    row["speedup"] = speedup;
    row["efficiency"] = speedup / row["gpus"].get<double>();
  }

  // The goals, evaluated on this projection.
  auto best = [&](int gpus) -> const nlohmann::json* {
    const nlohmann::json* b = nullptr;
    for (const auto& row : rows)
      if (row["gpus"] == gpus && (!b || row["step_s"].get<double>() < (*b)["step_s"].get<double>())) b = &row;
    return b;
  };
  const std::string device_name = !o.measured_file.empty() ? before.json.at("device").get<std::string>()
                                  : s.place.device.is_cuda() ? cuda_device_name(s.place.device) : "cpu";
  const bool h100 = device_name.find("H100") != std::string::npos;
  const bool wan14b_720p = o.dims == "14B" && o.heads == 0 && o.height == 720 && o.width == 1280 && o.frames == 81;
  nlohmann::json goals = nlohmann::json::array();
  const nlohmann::json* b8 = best(8);
  const nlohmann::json* cfg2 = nullptr;
  for (const auto& row : rows)
    if (row["layout"] == "cfg") cfg2 = &row;
  auto goal = [&](const std::string& what, const nlohmann::json* row, const char* field, double bound, bool below,
                  bool applies, const std::string& why_not) {
    nlohmann::json g = {{"goal", what}, {"label", "projection"}, {"applies", applies && row}};
    if (!row) g["reason"] = "no such layout in this run";
    else if (!applies) g["reason"] = why_not;
    if (row) {
      const double v = (*row)[field].get<double>();
      g["layout"] = (*row)["layout"], g["value"] = v, g["bound"] = bound;
      g["pass"] = below ? v <= bound : v >= bound;
    }
    goals.push_back(g);
  };
  goal("Wan2.1 14B 720x1280x81, 50 steps, on 8 x H100 in at most 150 s (denoising only here)", b8, "total_s", 150, true,
       wan14b_720p && h100 && o.steps == 50,
       concat("this run is ", o.dims, " ", o.height, "x", o.width, "x", o.frames, ", ", o.steps, " steps, measured on ", device_name));
  goal("efficiency >= 0.85 on 8 GPUs (the fastest 8-GPU layout)", b8, "efficiency", 0.85, false, true, "");
  goal("CFG-parallel on 2 GPUs: efficiency >= 0.95", cfg2, "efficiency", 0.95, false, true, "");

  auto link_json = [](const LinkSpeed& l) {
    nlohmann::json j = {{"name", l.name}};
    if (l.measured.empty()) j["bytes_per_s"] = l.bytes_per_s, j["latency_s"] = l.latency_s;
    else j["measured_world"] = l.measured_world, j["measured"] = l.measured;
    return j;
  };
  return {{"bench", "projection"},
          {"device", device_name},
          {"placement", o.measured_file.empty() ? placement_name(s.place) : before.json.at("placement").get<std::string>()},
          {"element_bytes", e},
          {"measured_by", o.measured_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.measured_file)},
          {"threads", at::get_num_threads()},
          {"dims", o.dims},
          {"arch", {{"dim", a.dim}, {"heads", a.num_heads}, {"layers", layers}, {"ffn_dim", a.ffn_dim}}},
          {"video", {{"height", o.height}, {"width", o.width}, {"frames", o.frames}, {"tokens", s.tokens}}},
          {"steps", o.steps},
          {"cfg_scale", o.cfg_scale},
          {"warmup", o.warmup},
          {"iters", o.iters},
          {"links", {{"intra_node", link_json(links.intra)}, {"inter_node", link_json(links.inter)}, {"gpus_per_node", o.gpus_per_node}}},
          {"method",
           {{"measured", concat("on this device, random weights at the model's dims: for each rank shape, ", o.blocks, " of ",
                                o.blocks + 1, " DiT blocks run as rank 0 of the layout (its tokens, head groups, ring passes ",
                                "and weight share, transfers taken out), each phase timed with the device synchronised; ",
                                "medians of ", o.iters, " forwards after ", o.warmup, " warm-up")},
            {"modelled", "the measured block x the layer count x the passes per step (2 with CFG unless CFG-parallel), "
                         "plus the engine's collectives (bytes per block from the engine's formula, src/parallel-model.ts) "
                         "at the links' speeds, exposed as the engine's overlap schedule leaves them; T5, the VAE decode "
                         "and the sampler are not included"}}},
          {"layouts", rows},
          {"skipped", skipped},
          {"rank_samples", o.measured_file.empty() ? rank_samples : before.json.value("rank_samples", nlohmann::json::object())},
          {"anchors",
           {{{"source", "Wan2.1 (official), T2V-14B 720p, 50 steps, H100"}, {"dims", "14B"}, {"height", 720}, {"width", 1280},
             {"gpus", {1, 2, 4, 8}}, {"total_s", {1837.9, 945.1, 497.0, 287.9}}},
            {{"source", "LightX2V, T2V-14B 480p"}, {"dims", "14B"}, {"height", 480}, {"width", 832}, {"gpus", {1, 8}},
             {"speedup", {1.0, 6.9}}}}},
          {"goals", goals}};
}

}  // namespace wan

#include "checkpoint/lora.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

#include "checkpoint/key_names.h"
#include "common/error.h"
#include "common/strings.h"
#include "formats/safetensors.h"

namespace wan {

namespace {

// What one key of a LoRA file is: a part of module `module`'s term.
enum class Part { Down, Up, Alpha, Diff, DiffBias, None };

struct KeyInfo {
  Part part = Part::None;
  std::string module;  // the file's module name, prefixes stripped
};

KeyInfo classify(std::string k) {
  for (const char* p : {"model.diffusion_model.", "diffusion_model.", "base_model.model."})
    if (starts_with(k, p)) {
      k = k.substr(strlen(p));
      break;
    }
  auto strip = [&](const std::string& suffix, Part part) -> KeyInfo {
    return ends_with(k, suffix) ? KeyInfo{part, k.substr(0, k.size() - suffix.size())} : KeyInfo{};
  };
  for (auto [s, p] : {std::pair<const char*, Part>{".lora_down.weight", Part::Down}, {".lora_up.weight", Part::Up},
                      {".alpha", Part::Alpha}, {".diff", Part::Diff}, {".diff_b", Part::DiffBias}})
    if (KeyInfo i = strip(s, p); i.part != Part::None) return i;
  // PEFT: <module>.lora_A.weight or <module>.lora_A.<adapter>.weight (DiffSynth drops the adapter name).
  for (auto [s, p] : {std::pair<const char*, Part>{".lora_A.", Part::Down}, {".lora_B.", Part::Up}}) {
    const size_t at = k.rfind(s);
    if (at == std::string::npos || !ends_with(k, ".weight")) continue;
    const std::string tail = k.substr(at + strlen(s));  // "weight" or "<adapter>.weight"
    if (tail == "weight" || tail.find('.') == tail.size() - 7) return {p, k.substr(0, at)};
  }
  return {};
}

// The model's weights by name and shape, and kohya's flattened module names ("blocks_3_self_attn_q").
struct ModelNames {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::string> kohya;  // "lora_unet_blocks_3_self_attn_q" -> "blocks.3.self_attn.q"
};

ModelNames model_names(const DitArch& arch) {
  ModelNames n;
  for (const TensorSpec& s : dit_specs(arch)) {
    n.shapes[s.name] = s.shape;
    if (!ends_with(s.name, ".weight")) continue;
    std::string module = s.name.substr(0, s.name.size() - 7), flat = module;
    for (char& c : flat)
      if (c == '.') c = '_';
    n.kohya["lora_unet_" + flat] = module;
  }
  return n;
}

// The canonical module of a file's module name, "" if it names no module of the model.
std::string canonical_module(const std::string& m, const ModelNames& names) {
  if (names.shapes.count(m + ".weight") || names.shapes.count(m)) return m;
  if (auto it = names.kohya.find(m); it != names.kohya.end()) return it->second;
  std::string d = starts_with(m, "transformer.") ? m.substr(12) : m;
  try {
    const std::string c = to_canonical(Layout::Diffusers, Component::DiT, d + ".weight", "");
    if (ends_with(c, ".weight") && names.shapes.count(c)) return c.substr(0, c.size() - 7);
  } catch (const Error&) {
  }
  return "";
}

// Whether a file's module name is one of the UMT5 text encoder's: kohya's "lora_te_" / "lora_te1_",
// diffusers' "text_encoder." pipeline prefix, Hugging Face UMT5 names ("encoder.block.3.layer.0.
// SelfAttention.q", "shared") or the official / DiffSynth WanTextEncoder names ("blocks.3.attn.q",
// "blocks.3.ffn.fc1", "token_embedding"), which no DiT module shares.
bool text_encoder_module(const std::string& m) {
  for (const char* p : {"lora_te_", "lora_te1_", "lora_te2_", "text_encoder.", "text_encoders.", "te.", "encoder.block.",
                        "encoder.final_layer_norm"})
    if (starts_with(m, p)) return true;
  if (m == "shared" || m == "token_embedding" || m == "encoder.embed_tokens") return true;
  if (!starts_with(m, "blocks.")) return false;
  const size_t dot = m.find('.', 7);
  if (dot == std::string::npos) return false;
  const std::string r = m.substr(dot + 1);
  return starts_with(r, "attn.") || r == "ffn.gate.0" || r == "ffn.fc1" || r == "ffn.fc2" ||
         starts_with(r, "pos_embedding");
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string lora_fingerprint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail("LoRA file ", path, " does not exist or cannot be read");
  if (!S_ISREG(st.st_mode)) fail("LoRA file ", path, " is not a regular file");
  const SafetensorsHeader h = read_safetensors_header(path);  // validates, names the file
  std::ifstream f(path, std::ios::binary);
  std::string header(h.data_offset, '\0');
  if (!f.read(&header[0], std::streamsize(header.size()))) fail("LoRA file ", path, ": cannot read its header");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(header));
  const int64_t mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return concat(int64_t(st.st_size), "-", mtime_ns, "-", hex);
}

namespace {

std::shared_ptr<const LoraFile> parse_lora(const std::string& path, const std::string& fingerprint,
                                           const DitArch& arch, bool strict) {
  auto out = std::make_shared<LoraFile>();
  out->path = path, out->fingerprint = fingerprint;
  TensorMap t;
  try {
    t = load_safetensors(path, /*mmap=*/false);  // copied: the file may change once parsed
  } catch (const Error& e) {
    fail("LoRA file ", path, " cannot be read: ", e.what());
  }
  const ModelNames names = model_names(arch);
  // Problems: an error at the first (keys in file order are sorted by name here), else skipped.
  auto problem = [&](const std::string& key, const std::string& why) {
    if (strict) fail("LoRA file ", path, ": key ", key, " ", why, " (strict: false skips such keys)");
    out->skipped.push_back(key + ": " + why);
  };
  struct Pieces {
    std::string up_key, down_key, alpha_key, diff_key, diff_b_key;
  };
  std::map<std::string, Pieces> modules;  // canonical module -> its keys
  if (std::none_of(t.begin(), t.end(), [](const auto& kv) { return classify(kv.first).part != Part::None; }))
    fail("LoRA file ", path, " holds no LoRA keys (lora_A/lora_B, lora_down/lora_up, alpha, diff, diff_b)",
         t.empty() ? std::string(": it has no tensors") : concat("; its first key is ", t.begin()->first));
  for (const auto& [key, st] : t) {
    const KeyInfo i = classify(key);
    if (i.part == Part::None) {
      problem(key, "is not a LoRA key (lora_A/lora_B, lora_down/lora_up, alpha, diff, diff_b)");
      continue;
    }
    const std::string m = canonical_module(i.module, names);
    if (m.empty() && text_encoder_module(i.module)) {
      problem(key, concat("is a text-encoder (UMT5) key (module ", i.module, "); LoRAs apply to the DiT only, as in "
                          "DiffSynth's Wan pipeline, whose load_lora fuses a file into the one model it is given"));
      continue;
    }
    if (m.empty()) {
      problem(key, concat("matches no weight of this DiT (module ", i.module, "; ", arch.num_layers, " blocks, dim ",
                          arch.dim, ")"));
      continue;
    }
    Pieces& p = modules[m];
    std::string& slot = i.part == Part::Up ? p.up_key : i.part == Part::Down ? p.down_key
                        : i.part == Part::Alpha ? p.alpha_key : i.part == Part::Diff ? p.diff_key : p.diff_b_key;
    if (!slot.empty()) {
      problem(key, concat("names the same weight as key ", slot));
      continue;
    }
    slot = key;
  }
  auto finite = [](const at::Tensor& x) { return at::isfinite(x).all().item<bool>(); };
  for (const auto& [m, p] : modules) {
    const std::string weight = names.shapes.count(m + ".weight") ? m + ".weight" : m;
    const std::vector<int64_t>& ws = names.shapes.at(weight);
    if (!p.up_key.empty() || !p.down_key.empty()) {
      const std::string& first = p.up_key.empty() ? p.down_key : p.up_key;
      if (p.up_key.empty() || p.down_key.empty()) {
        problem(first, p.up_key.empty() ? "has no lora_B / lora_up beside it" : "has no lora_A / lora_down beside it");
      } else {
        at::Tensor up = to_float32(t.at(p.up_key)), down = to_float32(t.at(p.down_key));
        const std::vector<int64_t> us = up.sizes().vec(), ds = down.sizes().vec();
        if (ws.size() != 2) {
          problem(p.up_key, concat("targets ", weight, " of shape ", shape_text(ws), ", not a linear weight"));
        } else if (up.dim() != 2 || down.dim() != 2) {
          problem(p.up_key, concat("has shape ", shape_text(us), " with down ", shape_text(ds), "; both must be 2-D"));
        } else if (up.size(1) != down.size(0)) {
          problem(p.up_key, concat("has rank ", up.size(1), " but its down key ", p.down_key, " has rank ", down.size(0),
                                   " (ranks disagree)"));
        } else if (up.size(0) != ws[0] || down.size(1) != ws[1]) {
          problem(p.up_key, concat("makes a ", up.size(0), " x ", down.size(1), " update but ", weight, " is ",
                                   shape_text(ws), " in this model (a LoRA for another model size?)"));
        } else if (!finite(up) || !finite(down)) {
          problem(p.up_key, "or its down key holds NaN or Inf values");
        } else {
          bool ok = true;
          if (!p.alpha_key.empty()) {
            const at::Tensor a = to_float32(t.at(p.alpha_key));
            if (a.numel() != 1 || !finite(a)) {
              problem(p.alpha_key, concat("must be one finite number, got ", a.numel(), " values"));
              ok = false;
            } else {
              down = down * (a.reshape({}) / down.size(0));  // DiffSynth: weight_down * (alpha / rank)
            }
          }
          if (ok) {
            out->terms.push_back({weight, p.up_key, up, down, {}});
            out->rank = std::max<int64_t>(out->rank, up.size(1));
          }
        }
      }
    } else if (!p.alpha_key.empty()) {
      problem(p.alpha_key, "has no lora_A/lora_B pair beside it");
    }
    for (const std::string* dk : {&p.diff_key, &p.diff_b_key}) {
      if (dk->empty()) continue;
      const std::string target = dk == &p.diff_key ? weight : m + ".bias";
      auto it = names.shapes.find(target);
      const at::Tensor d = to_float32(t.at(*dk));
      if (it == names.shapes.end()) {
        problem(*dk, concat("targets ", target, ", which this model does not have"));
      } else if (d.sizes().vec() != it->second) {
        problem(*dk, concat("has shape ", shape_text(d.sizes().vec()), " but ", target, " is ", shape_text(it->second),
                            " in this model (a LoRA for another model size?)"));
      } else if (!finite(d)) {
        problem(*dk, "holds NaN or Inf values");
      } else {
        auto same = std::find_if(out->terms.begin(), out->terms.end(), [&](const LoraTerm& x) { return x.target == target; });
        if (same != out->terms.end()) same->diff = d;
        else out->terms.push_back({target, *dk, {}, {}, d});
      }
    }
  }
  if (out->terms.empty())
    fail("LoRA file ", path, " holds no LoRA keys for this DiT (lora_A/lora_B, lora_down/lora_up or diff tensors)",
         out->skipped.empty() ? "" : concat("; skipped: ", out->skipped.front()));
  std::sort(out->terms.begin(), out->terms.end(), [](const LoraTerm& a, const LoraTerm& b) { return a.target < b.target; });
  for (const LoraTerm& x : out->terms)
    for (const at::Tensor* v : {&x.up, &x.down, &x.diff})
      if (v->defined()) out->bytes += v->numel() * 4;
  return out;
}

}  // namespace

std::shared_ptr<const LoraFile> load_lora(const std::string& path, const DitArch& arch, bool strict) {
  const std::string fp = lora_fingerprint(path);
  const std::string key = concat(path, "|", fp, "|", to_json(arch).dump(), "|", strict);
  static std::mutex mu;
  static std::vector<std::pair<std::string, std::shared_ptr<const LoraFile>>> cache;  // oldest first
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [k, f] : cache)
      if (k == key) return f;
  }
  std::shared_ptr<const LoraFile> f = parse_lora(path, fp, arch, strict);
  std::lock_guard<std::mutex> lock(mu);
  // Bounded: at most 16 files and 4 GiB of parsed tensors; the oldest go first.
  cache.emplace_back(key, f);
  int64_t bytes = 0;
  for (const auto& c : cache) bytes += c.second->bytes;
  while (cache.size() > 16 || (cache.size() > 1 && bytes > (int64_t(4) << 30))) {
    bytes -= cache.front().second->bytes;
    cache.erase(cache.begin());
  }
  return f;
}

}  // namespace wan

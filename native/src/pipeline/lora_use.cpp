// A request's LoRAs on the engine: checked with the request (validate: every file read, parsed and
// matched against the model before any compute), then put on every local copy of the DiT when a
// job starts (use_loras) — the working copies are built once per set and kept while the next
// requests ask for the same set; a request without LoRAs gets the base model back, bit for bit.
// Each node of a multi-node engine does the same from the request it receives.
#include <cmath>

#include "models/lora_merge.h"
#include "pipeline/t2v.h"

namespace wan {

namespace {
// path|fingerprint|scale of each LoRA in order: two requests with the same key use the same weights.
std::string set_key(const std::vector<LoraUse>& set) {
  std::string k;
  for (const LoraUse& u : set) {
    char s[32];
    std::snprintf(s, sizeof s, "%.17g", u.scale);
    k += concat(u.file->path, "|", u.file->fingerprint, "|", s, "\n");
  }
  return k;
}
}  // namespace

std::vector<LoraUse> T2VEngine::lora_set(const T2VRequest& r) const {
  std::vector<LoraUse> set;
  for (size_t i = 0; i < r.loras.size(); ++i) {
    const T2VRequest::Lora& l = r.loras[i];
    if (!std::isfinite(l.scale) || std::fabs(l.scale) > 100)
      fail_param("loras", "loras[", i, "].scale must be a finite number between -100 and 100, got ", l.scale, " (",
                 l.path, ")");
    if (shard_weights_ && dit_f8_)
      fail_param("loras", "LoRA ", l.path, ": the engine shards float8 DiT weights across ranks (shard weights), "
                 "which take no LoRA; open it without shard weights to use LoRAs");
    try {
      set.push_back({load_lora(l.path, model_.arch.dit, l.strict), l.scale});
    } catch (const ParamError&) {
      throw;
    } catch (const Error& e) {
      throw ParamError("loras", e.what());
    }
  }
  return set;
}

void T2VEngine::use_loras(const T2VRequest& r) const {
  const std::vector<LoraUse> set = lora_set(r);
  const std::string key = set_key(set);
  std::lock_guard<std::mutex> lock(lora_mu_);
  if (key == lora_key_) return;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (const auto& d : dits_) apply_loras(*d, set);
  } catch (...) {
    for (const auto& d : dits_) d->restore_base();  // every copy the same: the base
    lora_key_.clear(), lora_info_ = nlohmann::json::array();
    throw;
  }
  lora_key_ = key;
  lora_info_ = nlohmann::json::array();
  for (const LoraUse& u : set)
    lora_info_.push_back({{"path", u.file->path}, {"fingerprint", u.file->fingerprint}, {"scale", u.scale},
                          {"rank", u.file->rank}, {"weights", u.file->terms.size()}, {"skipped", u.file->skipped}});
  lora_switch_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

nlohmann::json T2VEngine::loras() const {
  std::lock_guard<std::mutex> lock(lora_mu_);
  return {{"loras", lora_info_}, {"working_bytes", dits_.front()->working_bytes()}, {"switch_s", lora_switch_s_}};
}

}  // namespace wan

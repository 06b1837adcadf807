// LoRAs on a loaded DiT: working copies of the weights they touch, the base kept pristine.
//
//   W' = W + Σ_i scale_i · (up_i · down_i + diff_i)     for each weight any LoRA of the set touches
//
// computed once per set in float32 (on the DiT's device; an offloaded block's weights on the
// host), LoRA after LoRA in the order given as DiffSynth's fused load_lora adds them, then
// rounded once to the weight's dtype. Switching sets puts every base tensor back first (the same
// tensors, so the base model is restored bit for bit) and then builds the new copies, so at most
// one set of working copies is alive at a time.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/lora.h"
#include "models/dit.h"

namespace wan {

struct LoraUse {
  std::shared_ptr<const LoraFile> file;
  double scale = 1.0;
};

// Makes `set` the DiT's LoRAs (an empty set: the base model).
void apply_loras(WanDiT& dit, const std::vector<LoraUse>& set);

// Bytes of the working copies `set` makes on one device copy of a DiT of `arch` whose weights
// compute in `compute` (norms and modulation stay float32): what the memory model adds to the
// weights. With the blocks sharded over `shards` ranks a rank copies its whole part of each
// touched block's buffer (per dtype), 1/shards of the block.
int64_t lora_working_bytes(const std::vector<LoraUse>& set, at::ScalarType compute, const DitArch& arch, int shards = 1);

}  // namespace wan

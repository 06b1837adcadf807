// PyTorch checkpoints (.pth/.pt) in torch.save's zip format, read by a restricted unpickler:
// only what a state_dict needs (tensor rebuild functions, typed storages, OrderedDict, plain
// containers) is understood; any other global is refused with an error naming it, so loading a
// checkpoint never runs code from it. The legacy (pre-1.6, non-zip) format is refused clearly.
#pragma once
#include <string>

#include "common/dtype.h"

namespace wan {

// Loads the state dict in `path`. Nested dicts (e.g. {"state_dict": {...}} or {"model": {...}})
// are flattened with '.'-joined keys. mmap=true: tensors alias the mapped file where the zip
// entry is stored uncompressed (torch.save always stores), else they are copied.
TensorMap load_pth(const std::string& path, bool mmap = true);

// Writes `tensors` as torch.save(OrderedDict(...)) would (zip format, pickle protocol 2,
// one storage per tensor, 64-byte aligned records, ZIP64 when needed), atomically. The file
// loads with torch.load(path, weights_only=True).
void save_pth(const std::string& path, const TensorMap& tensors);

}  // namespace wan

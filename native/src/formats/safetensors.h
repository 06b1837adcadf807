// safetensors: single files and sharded sets (NAME-0000K-of-0000N.safetensors + NAME.safetensors.index.json).
// Every header is validated in full before any tensor is touched: a bad file is an error naming
// the file and the tensor, never a crash or a read outside the file.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace wan {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;       // in file order
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_offset = 0;                     // 8 + header length
  uint64_t file_size = 0;
};

// Parses and validates the header of `path` without reading tensor data.
SafetensorsHeader read_safetensors_header(const std::string& path);

// Loads every tensor. mmap=true: tensors alias a read-only mapping of the file (no copy);
// mmap=false: tensors are copied into owned memory and the file is closed.
TensorMap load_safetensors(const std::string& path, bool mmap = true);

// Loads a sharded set from its index.json ({"metadata": {...}, "weight_map": {tensor: shard}}).
// Checks every shard exists (a missing shard names the shard and the index) and that each
// shard holds exactly the tensors the index assigns to it.
TensorMap load_safetensors_index(const std::string& index_path, bool mmap = true);

// Writes `tensors` (any layout; written contiguous, little-endian) atomically.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes shards of at most `max_shard_bytes` each (a tensor larger than that gets a shard of its own)
// as DIR/PREFIX-0000K-of-0000N.safetensors plus DIR/PREFIX.safetensors.index.json, in the
// Hugging Face format. Returns the shard file names in order.
std::vector<std::string> save_safetensors_sharded(const std::string& dir, const std::string& prefix,
                                                  const TensorMap& tensors, uint64_t max_shard_bytes);

}  // namespace wan

#include "formats/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/mapped_file.h"
#include "common/shape_str.h"

// The length prefix and every tensor's bytes are little-endian in the file; we alias and
// fwrite them as they are, which is only right on a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace wan {

namespace {

using json = nlohmann::json;

// The Python package refuses headers over 100 MB; a bigger length prefix means the file is
// not a safetensors file at all, and we would rather say so than parse 100 MB of noise. Within
// that, kSafetensorsHeaderJson bounds the nesting and the values (common/json_limits.h).
const uint64_t kMaxHeaderBytes = kSafetensorsHeaderJson.max_bytes;

template <typename... Args>
[[noreturn]] void fail_tensor(const std::string& path, const std::string& name, const Args&... args) {
  fail(path, ": tensor \"", name, "\": ", args...);
}

// A non-negative JSON integer. nlohmann stores those as number_unsigned; negative ones are
// number_integer and anything with a fraction or exponent is number_float.
uint64_t json_uint(const json& v, const std::string& path, const std::string& name, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail_tensor(path, name, what, " is negative (", v.dump(), ")");
  fail_tensor(path, name, what, " is not an integer (", v.dump(), ")");
}

const json& field(const json& entry, const char* key, const std::string& path, const std::string& name) {
  auto it = entry.find(key);
  if (it == entry.end()) fail_tensor(path, name, "missing \"", key, "\"");
  return *it;
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, const std::string& path,
                             uint64_t data_size) {
  if (!v.is_object()) fail_tensor(path, name, "entry is not an object");
  SafetensorsEntry e;
  e.name = name;

  const json& dt = field(v, "dtype", path, name);
  if (!dt.is_string()) fail_tensor(path, name, "\"dtype\" is not a string");
  auto d = dtype_from_name(dt.get<std::string>());
  if (!d) fail_tensor(path, name, "unknown dtype \"", dt.get<std::string>(), "\"");
  e.dtype = *d;

  const json& sh = field(v, "shape", path, name);
  if (!sh.is_array()) fail_tensor(path, name, "\"shape\" is not an array");
  // numel as the product of the non-zero dims, so that overflow is caught whatever the order
  // of the dims: a wrapped product could otherwise match a small byte range.
  uint64_t product = 1;
  bool has_zero = false;
  for (size_t i = 0; i < sh.size(); ++i) {
    uint64_t dim = json_uint(sh[i], path, name, "shape dim " + std::to_string(i));
    if (dim > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(product, dim ? dim : 1, &product))
      fail_tensor(path, name, "shape ", sh.dump(), " has too many elements (overflow)");
    has_zero = has_zero || dim == 0;
    e.shape.push_back(int64_t(dim));
  }
  uint64_t numel = has_zero ? 0 : product, expected = 0;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &expected) ||
      expected > uint64_t(std::numeric_limits<int64_t>::max()))
    fail_tensor(path, name, "shape ", sh.dump(), " has too many elements (overflow)");

  const json& off = field(v, "data_offsets", path, name);
  if (!off.is_array() || off.size() != 2) fail_tensor(path, name, "\"data_offsets\" is not a [begin, end] pair");
  e.begin = json_uint(off[0], path, name, "data_offsets begin");
  e.end = json_uint(off[1], path, name, "data_offsets end");
  if (e.begin > e.end) fail_tensor(path, name, "data_offsets [", e.begin, ", ", e.end, "] has begin > end");
  if (e.end > data_size)
    fail_tensor(path, name, "data_offsets end ", e.end, " is past the end of the data section (", data_size,
                " bytes; file truncated?)");
  if (e.end - e.begin != expected)
    fail_tensor(path, name, "data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes, expected ",
                expected, " bytes for ", dtype_name(e.dtype), " ", shape_str(e.shape));
  return e;
}

SafetensorsHeader parse_header(const MappedFile& file) {
  const std::string& path = file.path();
  SafetensorsHeader h;
  h.file_size = file.size();
  if (h.file_size < 8)
    fail(path, ": file is ", h.file_size, " bytes, too short for a safetensors header (at least 8)");
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  if (n == 0) fail(path, ": header length is 0");
  if (n > kMaxHeaderBytes)
    fail(path, ": header length ", n, " exceeds the ", kMaxHeaderBytes >> 20, " MiB limit (not a safetensors file?)");
  if (n > h.file_size - 8)
    fail(path, ": truncated: header length ", n, " needs ", n + 8, " bytes but the file has ", h.file_size);
  h.data_offset = 8 + n;
  const uint64_t data_size = h.file_size - h.data_offset;

  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  json j = parse_json_limited(text, text + n, path, kSafetensorsHeaderJson);

  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      // The Rust reader takes Option<HashMap<String, String>>, so null means "none".
      if (it->is_null()) continue;
      if (!it->is_object()) fail(path, ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path, ": __metadata__ value for \"", m.key(), "\" is not a string");
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(it.key(), *it, path, data_size));
  }

  // File order, which is also what the overlap check needs.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Gaps are allowed (we never read them); overlaps are not, since two tensors aliasing the
  // same bytes would be a corrupt or hostile file. Empty tensors occupy no bytes and cannot overlap.
  const SafetensorsEntry* reach = nullptr;  // the non-empty tensor reaching furthest so far
  for (const auto& e : h.tensors) {
    if (e.begin == e.end) continue;
    if (reach != nullptr && e.begin < reach->end)
      fail(path, ": tensors \"", reach->name, "\" [", reach->begin, ", ", reach->end, ") and \"", e.name, "\" [",
           e.begin, ", ", e.end, ") overlap");
    if (reach == nullptr || e.end > reach->end) reach = &e;
  }
  return h;
}

at::Tensor make_tensor(const std::shared_ptr<MappedFile>& file, const SafetensorsHeader& h,
                       const SafetensorsEntry& e, bool mmap) {
  auto opts = at::TensorOptions().dtype(storage_type(e.dtype));
  const size_t bytes = e.end - e.begin;
  if (bytes == 0) return at::empty(e.shape, opts);
  const uint8_t* p = file->data() + h.data_offset + e.begin;
  if (e.dtype == DType::BOOL) {
    // An ATen bool must be 0 or 1; anything else makes comparisons and sums quietly wrong.
    for (size_t i = 0; i < bytes; ++i)
      if (p[i] > 1) fail_tensor(file->path(), e.name, "BOOL element ", i, " is ", int(p[i]), " (must be 0 or 1)");
  }
  // The data section starts wherever the header ends, so a file written by another tool may
  // leave a tensor misaligned for its element type; such a tensor is copied, never aliased.
  const bool aligned = reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0;
  if (mmap && aligned) {
    // The deleter's copy of `file` keeps the mapping alive as long as the tensor's storage.
    return at::from_blob(const_cast<uint8_t*>(p), e.shape, [file](void*) { (void)file; }, opts);
  }
  at::Tensor t = at::empty(e.shape, opts);
  std::memcpy(t.data_ptr(), p, bytes);
  if (!mmap) file->drop(p, bytes);
  return t;
}

// Writes to path + ".tmp" and renames over `path` only once everything is on disk, so a reader
// (or a tensor still mapping the old file) never sees half a checkpoint. Removes the temporary
// file if anything throws before commit().
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path) : path_(path), tmp_(path + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (f_ == nullptr) fail("cannot create ", tmp_, ": ", std::strerror(errno));
  }
  ~AtomicWriter() {
    if (f_ != nullptr) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t size) {
    if (size != 0 && std::fwrite(data, 1, size, f_) != size) fail("cannot write ", tmp_, ": ", std::strerror(errno));
  }
  void commit() {
    bool ok = std::fflush(f_) == 0;
    ok = fsync(fileno(f_)) == 0 && ok;
    ok = std::fclose(f_) == 0 && ok;
    f_ = nullptr;
    if (!ok) fail("cannot write ", tmp_, ": ", std::strerror(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail("cannot rename ", tmp_, " to ", path_, ": ", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  bool committed_ = false;
};

uint64_t tensor_bytes(const StoredTensor& t) { return uint64_t(t.data.numel()) * dtype_size(t.dtype); }

struct OpenedFile {
  std::shared_ptr<MappedFile> file;
  SafetensorsHeader header;
};

OpenedFile open_safetensors(const std::string& path) {
  OpenedFile o;
  o.file = MappedFile::open(path);
  o.header = parse_header(*o.file);
  return o;
}

TensorMap load_opened(const OpenedFile& o, bool mmap) {
  TensorMap out;
  for (const auto& e : o.header.tensors) out.emplace(e.name, StoredTensor{make_tensor(o.file, o.header, e, mmap), e.dtype});
  return out;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::string& path) {
  // Mapping costs no reads: only the header pages are touched.
  return parse_header(*MappedFile::open(path));
}

TensorMap load_safetensors(const std::string& path, bool mmap) { return load_opened(open_safetensors(path), mmap); }

TensorMap load_safetensors_index(const std::string& index_path, bool mmap) {
  json j = read_json_file(index_path, kSafetensorsIndexJson);
  if (j.contains("metadata") && !j["metadata"].is_object() && !j["metadata"].is_null())
    fail(index_path, ": \"metadata\" is not an object");
  auto wm = j.find("weight_map");
  if (wm == j.end()) fail(index_path, ": missing \"weight_map\"");
  if (!wm->is_object()) fail(index_path, ": \"weight_map\" is not an object");

  // shard -> tensors the index assigns to it; std::map keeps the loading order deterministic.
  std::map<std::string, std::set<std::string>> shards;
  std::map<std::string, std::string> shard_of;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) fail(index_path, ": weight_map entry for tensor \"", it.key(), "\" is not a string");
    std::string shard = it->get<std::string>();
    // Shards live next to the index: a path component would let an index reach any file.
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard.find("..") != std::string::npos)
      fail(index_path, ": tensor \"", it.key(), "\" is assigned to \"", shard,
           "\", which is not a plain file name in the index's directory");
    shards[shard].insert(it.key());
    shard_of[it.key()] = shard;
  }

  std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  // Every shard must exist before any is loaded: one error naming the first missing shard
  // beats a half-loaded model.
  for (const auto& [shard, names] : shards) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(dir / shard, ec))
      fail("shard ", shard, " listed in ", index_path, " does not exist (looked for ", (dir / shard).string(), ")");
  }

  TensorMap out;
  for (const auto& [shard, names] : shards) {
    std::string shard_path = (dir / shard).string();
    OpenedFile o = open_safetensors(shard_path);
    std::set<std::string> present;
    for (const auto& e : o.header.tensors) {
      present.insert(e.name);
      auto it = shard_of.find(e.name);
      if (it == shard_of.end())
        fail("tensor \"", e.name, "\" is in ", shard_path, " but not in the weight_map of ", index_path);
      if (it->second != shard)
        fail("tensor \"", e.name, "\" is in both ", shard_path, " and ", (dir / it->second).string(), " (", index_path,
             " assigns it to ", it->second, ")");
    }
    for (const auto& name : names)
      if (!present.count(name))
        fail(index_path, " assigns tensor \"", name, "\" to ", shard_path, ", which does not contain it");
    TensorMap part = load_opened(o, mmap);
    out.insert(part.begin(), part.end());
  }
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, ": a tensor cannot be named \"__metadata__\"");
    if (!t.data.defined()) fail_tensor(path, name, "undefined tensor");
    if (t.data.scalar_type() != storage_type(t.dtype))
      fail_tensor(path, name, "dtype ", dtype_name(t.dtype), " needs storage ", storage_type(t.dtype), " but has ",
                  t.data.scalar_type());
    if (t.scale != 1.0f)
      fail_tensor(path, name, "carries a float8 scale (", t.scale, ") that would be lost: write it as a tensor of its own");
  }

  // Data order: element size descending, then name, as the Python package does. With the
  // header padded to 8 bytes this puts every tensor on its natural alignment, so a load can
  // alias the mapping instead of copying. Ranges are back to back: Python rejects gaps.
  std::vector<const TensorMap::value_type*> order;
  for (const auto& kv : tensors) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return dtype_size(a->second.dtype) > dtype_size(b->second.dtype);
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* kv : order) {
    uint64_t bytes = tensor_bytes(kv->second);
    header[kv->first] = {{"dtype", dtype_name(kv->second.dtype)},
                         {"shape", kv->second.data.sizes().vec()},
                         {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail(path, ": cannot encode the header (tensor names and metadata must be UTF-8): ", e.what());
  }
  // Python pads with spaces to a multiple of 8 so the data section starts 8-aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) fail(path, ": header of ", text.size(), " bytes exceeds the ", kMaxHeaderBytes >> 20, " MiB limit");

  // Streamed tensor by tensor, so a multi-GB checkpoint never needs a second full copy in memory.
  AtomicWriter w(path);
  uint64_t n = text.size();
  w.write(&n, 8);
  w.write(text.data(), text.size());
  for (const auto* kv : order) {
    at::Tensor c = kv->second.data.to(at::kCPU).contiguous();
    w.write(c.data_ptr(), tensor_bytes(kv->second));
  }
  w.commit();
}

std::vector<std::string> save_safetensors_sharded(const std::string& dir, const std::string& prefix,
                                                  const TensorMap& tensors, uint64_t max_shard_bytes) {
  if (prefix.empty() || prefix.find('/') != std::string::npos || prefix.find("..") != std::string::npos)
    fail("shard prefix \"", prefix, "\" must be a plain file name (no '/' or '..')");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create directory ", dir, ": ", ec.message());

  // Greedy in name order, as transformers' shard_checkpoint does: start a new shard when the
  // next tensor would overflow a non-empty one. A tensor over the limit ends up alone.
  std::vector<TensorMap> parts(1);
  uint64_t current = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t bytes = tensor_bytes(t);
    if (!parts.back().empty() && current + bytes > max_shard_bytes) {
      parts.emplace_back();
      current = 0;
    }
    parts.back()[name] = t;
    current += bytes;
    total += bytes;
  }
  if (parts.size() > 99999) fail(dir, "/", prefix, ": ", parts.size(), " shards do not fit the 5-digit naming");

  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t i = 0; i < parts.size(); ++i) {
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu.safetensors", i + 1, parts.size());
    names.push_back(prefix + suffix);
    for (const auto& kv : parts[i]) weight_map[kv.first] = names.back();
  }
  // Shards first, index last: an index on disk never points at a shard not yet written.
  for (size_t i = 0; i < parts.size(); ++i)
    save_safetensors((std::filesystem::path(dir) / names[i]).string(), parts[i]);

  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const json::exception& e) {
    fail(dir, "/", prefix, ".safetensors.index.json: cannot encode the index: ", e.what());
  }
  write_file_atomic((std::filesystem::path(dir) / (prefix + ".safetensors.index.json")).string(), text.data(),
                    text.size());
  return names;
}

}  // namespace wan

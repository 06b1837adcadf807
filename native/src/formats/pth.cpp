// torch.save zip archives: ARCHIVE/data.pkl (the pickled object), ARCHIVE/data/<key> (one raw
// little-endian record per storage) and ARCHIVE/version; newer torch adds ARCHIVE/byteorder and
// ARCHIVE/.data/serialization_id, the newest also .format_version and .storage_alignment.
// ARCHIVE is the first entry's directory: the file stem in older torch, "archive" in newer; any
// name loads. Every tensor loads to the CPU whatever location ('cuda:0') it was saved from;
// requires_grad and Parameter-ness are dropped, since a TensorMap holds plain weights.
#include "formats/pth.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>

#include "formats/pickle.h"
#include "formats/zip.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "common/strings.h"
#include "common/shape_str.h"

namespace wan {

namespace {

constexpr int kMaxNesting = 64;  // dict depth; also what stops a self-referencing dict
// torch.serialization's legacy MAGIC_NUMBER 0x1950a86a20f9469cfc6c, as pickled LONG1 bytes.
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

using Named = std::vector<std::pair<std::string, const pickle::Value*>>;

// Collects the tensors of a (nested) dict under '.'-joined names. Non-tensor leaves (ints such
// as "epoch", strings, lists, None) carry no weights and are skipped; lists are not descended.
void flatten(const pickle::Value* dict, const std::string& prefix, int depth, const std::string& path, Named& out) {
  if (depth > kMaxNesting) fail(path, ": dicts nested deeper than ", kMaxNesting, " levels (or a cycle) under '", prefix, "'");
  for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
    const pickle::Value* key = dict->items[k];
    const pickle::Value* val = dict->items[k + 1];
    std::string name;
    if (key->kind == pickle::Kind::Str)
      name = key->s;
    else if (key->kind == pickle::Kind::Int)
      name = std::to_string(key->i);
    else
      fail(path, ": dict key of type ", pickle::kind_name(key->kind), " under '", prefix, "'");
    std::string full = prefix.empty() ? name : prefix + "." + name;
    if (val->kind == pickle::Kind::Tensor)
      out.emplace_back(full, val);
    else if (val->kind == pickle::Kind::Dict)
      flatten(val, full, depth + 1, path, out);
  }
}

// Loads tensors from the storages of a parsed archive. One base tensor per (storage, dtype):
// every tensor of that storage is an as_strided view of it, so views stay views.
class Materializer {
 public:
  Materializer(const ZipReader& zip, std::string prefix, bool mmap) : zip_(zip), prefix_(std::move(prefix)), mmap_(mmap) {}

  at::Tensor tensor(const std::string& name, const pickle::TensorInfo& t) {
    const pickle::StorageInfo& s = *t.storage->storage;
    const std::string& path = zip_.path();
    std::string record = prefix_ + "/data/" + s.key;
    const ZipEntry* e = zip_.find(record);
    if (e == nullptr) fail("tensor ", name, " in ", path, ": its storage record ", record, " is missing");

    const uint64_t es = dtype_size(t.dtype);
    uint64_t storage_bytes = 0;
    if (__builtin_mul_overflow(uint64_t(s.numel), s.dtype ? dtype_size(*s.dtype) : 1, &storage_bytes) ||
        e->size < storage_bytes)
      fail("tensor ", name, " in ", path, ": storage ", record, " has ", e->size, " bytes, less than the ", s.numel,
           s.dtype ? " elements" : " bytes", " its pickle declares");
    const uint64_t elems = storage_bytes / es;

    // The view must stay inside the storage: offset + sum((size_i - 1) * stride_i) < elems.
    uint64_t numel = 1, last = uint64_t(t.offset);
    bool overflow = false;
    for (size_t d = 0; d < t.size.size(); ++d) {
      overflow |= __builtin_mul_overflow(numel, uint64_t(t.size[d]), &numel);
      uint64_t reach = 0;
      if (t.size[d] > 0) {
        overflow |= __builtin_mul_overflow(uint64_t(t.size[d] - 1), uint64_t(t.stride[d]), &reach);
        overflow |= __builtin_add_overflow(last, reach, &last);
      }
    }
    if (numel == 0 && !overflow) return at::empty(t.size, at::TensorOptions().dtype(storage_type(t.dtype)));
    if (overflow || last >= elems)
      fail("tensor ", name, " in ", path, ": offset ", t.offset, ", size ", shape_str(t.size), ", stride ",
           shape_str(t.stride), " reach past the ", elems, " elements of storage ", record);
    return base(*e, t.dtype, elems).as_strided(t.size, t.stride, t.offset);
  }

 private:
  at::Tensor base(const ZipEntry& e, DType dtype, uint64_t elems) {
    auto key = std::make_pair(e.name, dtype);
    auto it = bases_.find(key);
    if (it != bases_.end()) return it->second;
    const uint8_t* p = zip_.data(e);  // throws naming the entry if it is compressed
    auto options = at::TensorOptions().dtype(storage_type(dtype));
    at::Tensor b;
    if (mmap_ && reinterpret_cast<uintptr_t>(p) % dtype_size(dtype) == 0) {
      // Aliases the read-only mapping; the deleter holds the file open as long as a view lives.
      std::shared_ptr<MappedFile> keep = zip_.file();
      b = at::from_blob(const_cast<uint8_t*>(p), {int64_t(elems)}, [keep](void*) {}, options);
    } else {
      // One owned copy per storage, shared by all its views (and by all dtypes viewing it).
      auto c = copies_.find(e.name);
      if (c == copies_.end()) {
        at::Tensor bytes = at::empty({int64_t(e.size)}, at::kByte);
        std::memcpy(bytes.data_ptr(), p, e.size);
        zip_.file()->drop(p, e.size);
        c = copies_.emplace(e.name, bytes).first;
      }
      at::Tensor bytes = c->second;
      b = at::from_blob(bytes.data_ptr(), {int64_t(elems)}, [bytes](void*) {}, options);
    }
    bases_.emplace(key, b);
    return b;
  }

  const ZipReader& zip_;
  std::string prefix_;
  bool mmap_;
  std::map<std::pair<std::string, DType>, at::Tensor> bases_;
  std::map<std::string, at::Tensor> copies_;
};

bool is_legacy(const MappedFile& f) {
  // Legacy torch.save starts with pickle.dump(MAGIC_NUMBER): PROTO n [FRAME ...] LONG1 10 <magic>.
  if (f.size() < 2 || f.data()[0] != 0x80) return false;
  size_t limit = std::min<size_t>(f.size(), 32);
  return std::search(f.data(), f.data() + limit, std::begin(kLegacyMagic), std::end(kLegacyMagic)) != f.data() + limit;
}

std::string record_text(const ZipReader& zip, const ZipEntry& e) {
  if (e.size > 64) fail("record ", e.name, " in ", zip.path(), " is ", e.size, " bytes; expected a short text");
  return std::string(reinterpret_cast<const char*>(zip.data(e)), e.size);
}

}  // namespace

TensorMap load_pth(const std::string& path, bool mmap) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  const uint8_t* d = file->data();
  if (file->size() < 4 || std::memcmp(d, "PK\x03\x04", 4) != 0) {
    if (is_legacy(*file))
      fail("legacy (non-zip) torch.save format is not supported: ", path,
           "; re-save it with torch.save in PyTorch >= 1.6");
    if (file->size() >= 8 && std::memcmp(d, "PYTORCH1", 8) == 0)
      fail(path, " is in the PyTorch 1.4 preview archive format, which is not supported");
    fail(path, " is not a PyTorch checkpoint: torch.save files are zip archives starting with PK\\x03\\x04");
  }

  ZipReader zip(file);
  if (zip.entries().empty()) fail(path, ": zip archive has no entries");
  const std::string& first = zip.entries().front().name;
  size_t slash = first.find('/');
  if (slash == std::string::npos || slash == 0)
    fail(path, ": zip entry ", first, " is not inside an archive directory, so this is not a torch.save file");
  std::string prefix = first.substr(0, slash);

  for (const ZipEntry& e : zip.entries())
    if (e.name == prefix + "/constants.pkl" || starts_with(e.name, prefix + "/code/"))
      fail(path, " is a TorchScript archive (torch.jit.save), not a torch.save state dict");
  if (const ZipEntry* bo = zip.find(prefix + "/byteorder")) {
    std::string order = record_text(zip, *bo);
    if (order != "little") fail(path, " was saved with byte order '", order, "'; only little-endian checkpoints load");
  }
  const ZipEntry* pkl = zip.find(prefix + "/data.pkl");
  if (pkl == nullptr) fail(path, ": no ", prefix, "/data.pkl record, so this is not a torch.save file");
  zip.verify_crc(*pkl);

  std::unique_ptr<pickle::Unpickled> up = pickle::unpickle(zip.data(*pkl), pkl->size, path);
  const pickle::Value* root = up->root;
  if (root->kind != pickle::Kind::Dict)
    fail(path, " holds a pickled ", pickle::kind_name(root->kind), ", not a dict of tensors (a state dict)");
  Named named;
  flatten(root, "", 0, path, named);

  TensorMap out;
  Materializer m(zip, prefix, mmap);
  for (const auto& [name, v] : named) {
    if (out.count(name)) fail(path, ": tensor name ", name, " occurs twice after flattening nested dicts");
    out[name] = StoredTensor{m.tensor(name, *v->tensor), v->tensor->dtype};
  }
  return out;
}

void save_pth(const std::string& path, const TensorMap& tensors) {
  std::vector<pickle::TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.data.defined()) fail("cannot save ", path, ": tensor ", name, " is undefined");
    if (t.data.scalar_type() != storage_type(t.dtype))
      fail("cannot save ", path, ": tensor ", name, " is declared ", dtype_name(t.dtype), " but holds ",
           t.data.scalar_type(), " data");
    if (t.scale != 1.0f)
      fail("cannot save ", path, ": tensor ", name, " carries a float8 scale (", t.scale, ") that would be lost");
    specs.push_back({name, t.dtype, t.data.sizes().vec()});
  }
  std::string pkl = pickle::pickle_state_dict(specs);

  // Streams straight from each tensor's memory to the file: only one non-contiguous (or GPU)
  // tensor at a time is ever copied, never the whole checkpoint.
  const std::string tmp = path + ".tmp";
  try {
    ZipWriter w(tmp);
    const std::string a = "archive/";
    w.add(a + "data.pkl", pkl);
    w.add(a + "byteorder", std::string("little"));
    size_t i = 0;
    for (const auto& [name, t] : tensors) {
      at::Tensor c = t.data;
      if (!c.device().is_cpu()) c = c.cpu();
      c = c.contiguous();
      uint64_t nbytes = uint64_t(c.numel()) * dtype_size(t.dtype);
      w.begin_entry(a + "data/" + std::to_string(i++), nbytes);
      const uint8_t* p = static_cast<const uint8_t*>(c.data_ptr());
      constexpr uint64_t kChunk = 8 << 20;  // checksum a chunk while it is in cache, then write it
      for (uint64_t off = 0; off < nbytes; off += kChunk) w.write(p + off, std::min(kChunk, nbytes - off));
      w.end_entry();
    }
    w.add(a + "version", std::string("3\n"));
    // No .data/serialization_id: it is a hash private to torch's writer, and no reader needs it.
    w.finish();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", std::strerror(e));
  }
}

}  // namespace wan

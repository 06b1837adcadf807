#include "formats/zip.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace wan {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the zip code assumes a little-endian host");

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50, kDescriptorSig = 0x08074b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kEnd64Size = 56, kLocator64Size = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t k32 = 0xffffffffu;
constexpr uint16_t k16 = 0xffff;
// Bit 3: CRC and sizes follow the data in a descriptor; bit 11: names are UTF-8. miniz (and so
// torch.save) writes both.
constexpr uint16_t kFlags = 0x0808;
constexpr uint16_t kDosDate = 0x0021;  // 1980-01-01: fixed so identical inputs give identical files

struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (int i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
};

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

void wr16(std::string& s, uint16_t v) {
  s.push_back(char(v & 0xff));
  s.push_back(char(v >> 8));
}
void wr32(std::string& s, uint32_t v) {
  wr16(s, uint16_t(v & 0xffff));
  wr16(s, uint16_t(v >> 16));
}
void wr64(std::string& s, uint64_t v) {
  wr32(s, uint32_t(v & k32));
  wr32(s, uint32_t(v >> 32));
}

// True when [off, off + n) lies inside a file of `size` bytes, without overflow.
bool inside(uint64_t off, uint64_t n, uint64_t size) { return off <= size && n <= size - off; }

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const CrcTables tables;
  const auto& T = tables.t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  // Slicing-by-8: about 1.5 GB/s, so checksumming is not the bottleneck when writing to disk.
  while (size >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = T[7][lo & 0xff] ^ T[6][(lo >> 8) & 0xff] ^ T[5][(lo >> 16) & 0xff] ^ T[4][lo >> 24] ^ T[3][hi & 0xff] ^
          T[2][(hi >> 8) & 0xff] ^ T[1][(hi >> 16) & 0xff] ^ T[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size--) crc = T[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ---------------------------------------------------------------------------------------------
// Reader

ZipReader::ZipReader(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const uint8_t* d = file_->data();
  const uint64_t size = file_->size();

  // The end of central directory record is the last thing in the file, followed only by a
  // comment of at most 64 KiB. Scan backwards for its signature.
  if (size < kEndSize) fail(path, ": not a zip archive (", size, " bytes; truncated?)");
  uint64_t end = UINT64_MAX;
  uint64_t lowest = size - kEndSize > 0xffff ? size - kEndSize - 0xffff : 0;
  for (uint64_t off = size - kEndSize + 1; off-- > lowest;) {
    if (rd32(d + off) == kEndSig && off + kEndSize + rd16(d + off + 20) <= size) {
      end = off;
      break;
    }
  }
  if (end == UINT64_MAX)
    fail(path, ": no zip end of central directory record (truncated or not a zip archive)");

  const uint8_t* e = d + end;
  if (rd16(e + 4) != 0 || rd16(e + 6) != 0) fail(path, ": multi-disk zip archives are not supported");
  uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_offset = rd32(e + 16);
  uint64_t cd_limit = end;  // the central directory ends where the end records begin

  // ZIP64: a locator right before the end record points at the ZIP64 end record, which holds
  // the 64-bit counts and offsets (torch always writes both; the 32-bit fields then read
  // 0xffff.. only when they overflow).
  if (end >= kLocator64Size && rd32(d + end - kLocator64Size) == kLocator64Sig) {
    const uint8_t* loc = d + end - kLocator64Size;
    uint64_t end64 = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1) fail(path, ": multi-disk zip archives are not supported");
    if (!inside(end64, kEnd64Size, end - kLocator64Size) || rd32(d + end64) != kEnd64Sig)
      fail(path, ": ZIP64 locator points at offset ", end64, ", which is not a ZIP64 end record (corrupt archive)");
    const uint8_t* z = d + end64;
    if (rd32(z + 16) != 0 || rd32(z + 20) != 0) fail(path, ": multi-disk zip archives are not supported");
    count = rd64(z + 32);
    cd_size = rd64(z + 40);
    cd_offset = rd64(z + 48);
    cd_limit = end64;
  } else if (count == k16 || cd_size == k32 || cd_offset == k32) {
    fail(path, ": zip end record needs ZIP64 values but there is no ZIP64 locator (corrupt archive)");
  }
  if (!inside(cd_offset, cd_size, cd_limit))
    fail(path, ": central directory (offset ", cd_offset, ", ", cd_size, " bytes) lies outside the file (truncated?)");
  if (count > cd_size / kCentralSize)
    fail(path, ": central directory claims ", count, " entries in ", cd_size, " bytes (corrupt archive)");

  entries_.reserve(count);
  uint64_t pos = cd_offset, cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (!inside(pos, kCentralSize, cd_end) || rd32(d + pos) != kCentralSig)
      fail(path, ": bad central directory entry ", i, " at offset ", pos, " (corrupt archive)");
    const uint8_t* c = d + pos;
    ZipEntry z;
    z.flags = rd16(c + 8);
    z.method = rd16(c + 10);
    z.crc = rd32(c + 16);
    z.compressed_size = rd32(c + 20);
    z.size = rd32(c + 24);
    uint16_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
    z.header_offset = rd32(c + 42);
    uint64_t var = uint64_t(name_len) + extra_len + comment_len;
    if (!inside(pos + kCentralSize, var, cd_end))
      fail(path, ": central directory entry ", i, " runs past the directory (corrupt archive)");
    z.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);

    // ZIP64 extra field: 64-bit values for exactly those fields whose 32-bit slot is 0xffffffff,
    // in the order size, compressed size, header offset.
    bool need64 = z.size == k32 || z.compressed_size == k32 || z.header_offset == k32;
    const uint8_t* x = c + kCentralSize + name_len;
    const uint8_t* x_end = x + extra_len;
    bool have64 = false;
    while (x_end - x >= 4) {
      uint16_t id = rd16(x), len = rd16(x + 2);
      if (len > x_end - x - 4) fail(path, ": malformed extra field in zip entry ", z.name);
      if (id == kZip64ExtraId) {
        const uint8_t* v = x + 4;
        const uint8_t* v_end = v + len;
        for (uint64_t* field : {&z.size, &z.compressed_size, &z.header_offset}) {
          if (*field != k32) continue;
          if (v_end - v < 8) fail(path, ": ZIP64 extra field of zip entry ", z.name, " is too short");
          *field = rd64(v);
          v += 8;
        }
        have64 = true;
      }
      x += 4 + len;
    }
    if (need64 && !have64) fail(path, ": zip entry ", z.name, " needs a ZIP64 extra field but has none");
    if (z.flags & 1) fail(path, ": zip entry ", z.name, " is encrypted");

    // The local header repeats the name and has its own extra field (torch pads it for
    // alignment), so the data offset comes from there.
    if (!inside(z.header_offset, kLocalSize, cd_offset) || rd32(d + z.header_offset) != kLocalSig)
      fail(path, ": zip entry ", z.name, " has no local header at offset ", z.header_offset, " (corrupt archive)");
    const uint8_t* l = d + z.header_offset;
    uint64_t l_name = rd16(l + 26), l_extra = rd16(l + 28);
    if (l_name != name_len || !inside(z.header_offset + kLocalSize, l_name + l_extra, cd_offset) ||
        std::memcmp(l + kLocalSize, z.name.data(), name_len) != 0)
      fail(path, ": local header of zip entry ", z.name, " does not match the central directory (corrupt archive)");
    z.data_offset = z.header_offset + kLocalSize + l_name + l_extra;
    if (!inside(z.data_offset, z.compressed_size, cd_offset))
      fail(path, ": data of zip entry ", z.name, " (", z.compressed_size, " bytes at offset ", z.data_offset,
           ") runs past the end of the data (truncated?)");
    if (z.method == 0 && z.compressed_size != z.size)
      fail(path, ": stored zip entry ", z.name, " has different stored and uncompressed sizes (corrupt archive)");

    if (!index_.emplace(z.name, entries_.size()).second) fail(path, ": duplicate zip entry ", z.name);
    entries_.push_back(std::move(z));
    pos += kCentralSize + var;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const uint8_t* ZipReader::data(const ZipEntry& e) const {
  if (e.method != 0)
    fail("zip entry ", e.name, " in ", path(), " is compressed (method ", e.method,
         "); only stored entries are supported, as torch.save writes them");
  return file_->data() + e.data_offset;
}

void ZipReader::verify_crc(const ZipEntry& e) const {
  uint32_t c = crc32(data(e), e.size);
  if (c != e.crc) fail("zip entry ", e.name, " in ", path(), " fails its CRC-32 check (corrupt file)");
}

// ---------------------------------------------------------------------------------------------
// Writer

ZipWriter::ZipWriter(const std::string& path, bool force_zip64) : path_(path), force_zip64_(force_zip64) {
  f_ = std::fopen(path.c_str(), "wb");
  if (f_ == nullptr) fail("cannot create ", path, ": ", std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
}

ZipWriter::~ZipWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

void ZipWriter::put(const void* data, size_t n) {
  if (n != 0 && std::fwrite(data, 1, n, f_) != n) fail("cannot write ", path_, ": ", std::strerror(errno));
  offset_ += n;
}

void ZipWriter::begin_entry(const std::string& name, uint64_t size) {
  if (in_entry_ || finished_) fail("internal: zip entry ", name, " started while another is open in ", path_);
  if (name.size() > 0xffff) fail("zip entry name too long in ", path_);
  bool zip64_size = force_zip64_ || size >= k32;
  bool zip64_offset = force_zip64_ || offset_ >= k32;
  cur_ = Written{name, 0, size, offset_, zip64_size || zip64_offset};

  std::string extra;
  if (cur_.zip64) {
    wr16(extra, kZip64ExtraId);
    wr16(extra, uint16_t((zip64_size ? 16 : 0) + (zip64_offset ? 8 : 0)));
    if (zip64_size) {
      wr64(extra, size);
      wr64(extra, size);
    }
    if (zip64_offset) wr64(extra, offset_);
  }
  // torch's getPadding(): an "FB" extra record whose payload pads the data start to 64 bytes.
  uint64_t start = offset_ + kLocalSize + name.size() + extra.size() + 4;
  uint64_t pad = (kAlignment - start % kAlignment) % kAlignment;
  extra += "FB";
  wr16(extra, uint16_t(pad));
  extra.append(pad, 'Z');

  std::string h;
  wr32(h, kLocalSig);
  wr16(h, cur_.zip64 ? 45 : 20);  // version needed: 4.5 for ZIP64
  wr16(h, kFlags);
  wr16(h, 0);  // stored
  wr16(h, 0);  // time
  wr16(h, kDosDate);
  wr32(h, 0);  // CRC, sizes: in the data descriptor
  wr32(h, zip64_size ? k32 : 0);
  wr32(h, zip64_size ? k32 : 0);
  wr16(h, uint16_t(name.size()));
  wr16(h, uint16_t(extra.size()));
  h += name;
  h += extra;
  put(h.data(), h.size());
  in_entry_ = true;
  cur_written_ = 0;
}

void ZipWriter::write(const void* data, size_t n) {
  if (!in_entry_) fail("internal: zip write outside an entry in ", path_);
  if (n > cur_.size - cur_written_)
    fail("internal: zip entry ", cur_.name, " in ", path_, " gets more than its declared ", cur_.size, " bytes");
  cur_.crc = crc32(data, n, cur_.crc);
  put(data, n);
  cur_written_ += n;
}

void ZipWriter::end_entry() {
  if (!in_entry_) fail("internal: zip end_entry without an entry in ", path_);
  if (cur_written_ != cur_.size)
    fail("internal: zip entry ", cur_.name, " in ", path_, " got ", cur_written_, " of its ", cur_.size, " bytes");
  std::string dd;
  wr32(dd, kDescriptorSig);
  wr32(dd, cur_.crc);
  if (cur_.zip64) {
    wr64(dd, cur_.size);
    wr64(dd, cur_.size);
  } else {
    wr32(dd, uint32_t(cur_.size));
    wr32(dd, uint32_t(cur_.size));
  }
  put(dd.data(), dd.size());
  written_.push_back(std::move(cur_));
  in_entry_ = false;
}

void ZipWriter::add(const std::string& name, const void* data, size_t size) {
  begin_entry(name, size);
  write(data, size);
  end_entry();
}

void ZipWriter::finish() {
  if (in_entry_) fail("internal: zip finish with entry ", cur_.name, " open in ", path_);
  if (finished_) return;
  uint64_t cd_offset = offset_;
  for (const Written& w : written_) {
    bool big_size = force_zip64_ || w.size >= k32;
    bool big_offset = force_zip64_ || w.header_offset >= k32;
    std::string extra;
    if (big_size || big_offset) {
      wr16(extra, kZip64ExtraId);
      wr16(extra, uint16_t((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
      if (big_size) {
        wr64(extra, w.size);
        wr64(extra, w.size);
      }
      if (big_offset) wr64(extra, w.header_offset);
    }
    std::string c;
    wr32(c, kCentralSig);
    wr16(c, 45);  // made by: 4.5, MS-DOS attributes (none)
    wr16(c, w.zip64 ? 45 : 20);
    wr16(c, kFlags);
    wr16(c, 0);
    wr16(c, 0);
    wr16(c, kDosDate);
    wr32(c, w.crc);
    wr32(c, big_size ? k32 : uint32_t(w.size));
    wr32(c, big_size ? k32 : uint32_t(w.size));
    wr16(c, uint16_t(w.name.size()));
    wr16(c, uint16_t(extra.size()));
    wr16(c, 0);  // comment
    wr16(c, 0);  // disk
    wr16(c, 0);  // internal attributes
    wr32(c, 0);  // external attributes
    wr32(c, big_offset ? k32 : uint32_t(w.header_offset));
    c += w.name;
    c += extra;
    put(c.data(), c.size());
  }
  uint64_t cd_size = offset_ - cd_offset;
  uint64_t n = written_.size();
  bool big = force_zip64_ || n >= k16 || cd_size >= k32 || cd_offset >= k32;

  // ZIP64 end record and locator always, as miniz writes them for torch (MZ_ZIP_FLAG_WRITE_ZIP64);
  // readers that do not need them skip them. The record must sit right before the locator:
  // Python's zipfile looks for it there rather than at the locator's offset.
  uint64_t end64 = offset_;
  std::string t;
  wr32(t, kEnd64Sig);
  wr64(t, kEnd64Size - 12);  // size of the rest of the record
  wr16(t, 45);
  wr16(t, 45);
  wr32(t, 0);
  wr32(t, 0);
  wr64(t, n);
  wr64(t, n);
  wr64(t, cd_size);
  wr64(t, cd_offset);
  wr32(t, kLocator64Sig);
  wr32(t, 0);
  wr64(t, end64);
  wr32(t, 1);  // total disks
  wr32(t, kEndSig);
  wr16(t, 0);
  wr16(t, 0);
  wr16(t, big ? k16 : uint16_t(n));
  wr16(t, big ? k16 : uint16_t(n));
  wr32(t, big ? k32 : uint32_t(cd_size));
  wr32(t, big ? k32 : uint32_t(cd_offset));
  wr16(t, 0);  // comment
  put(t.data(), t.size());

  bool ok = std::fflush(f_) == 0;
  ok = fsync(fileno(f_)) == 0 && ok;
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  if (!ok) fail("cannot write ", path_, ": ", std::strerror(errno));
  finished_ = true;
}

}  // namespace wan

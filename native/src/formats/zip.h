// A minimal zip reader and writer: exactly what torch.save archives need. Only stored
// (uncompressed) entries are supported, so every entry's bytes can be used in place from a
// mapped file; ZIP64 is supported both ways, since real checkpoints pass 4 GiB (the Wan2.1 T5
// encoder is 11 GB).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/mapped_file.h"

namespace wan {

// CRC-32 (the zip/zlib polynomial). Pass the previous result to continue a running checksum.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored; anything else is compressed
  uint16_t flags = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;           // uncompressed
  uint64_t header_offset = 0;  // of the local header
  uint64_t data_offset = 0;    // of the entry's bytes
};

// Reads the central directory of a mapped zip file. Every offset and size is checked against
// the file before it is used: a truncated or corrupt archive is an error naming the file.
class ZipReader {
 public:
  explicit ZipReader(std::shared_ptr<MappedFile> file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  // The entry's bytes inside the mapping. Throws naming the entry and the file when the entry
  // is compressed (torch.save never compresses; we do not carry an inflater).
  const uint8_t* data(const ZipEntry& e) const;
  // Recomputes the CRC-32 of a stored entry and throws on mismatch (used for small records;
  // checking multi-GB storages would defeat mmap loading).
  void verify_crc(const ZipEntry& e) const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// Writes a zip file front to back, one stored entry at a time, the way torch.save's
// PyTorchStreamWriter (miniz) does: each local header's extra field is padded with an "FB"
// record so the entry's data starts at a multiple of 64 bytes, the CRC and sizes follow the
// data in a data descriptor (so data streams through once), and ZIP64 extra fields are written
// for entries whose size or offset does not fit 32 bits. The central directory always ends
// with ZIP64 end records, as torch's does.
class ZipWriter {
 public:
  // Creates (truncates) `path`. force_zip64 writes ZIP64 fields for every entry even when the
  // values would fit in 32 bits: tests use it to exercise the ZIP64 paths with small files.
  explicit ZipWriter(const std::string& path, bool force_zip64 = false);
  ~ZipWriter();  // closes the file if finish() was not reached; the caller removes it
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Streams one entry whose size is known up front: begin, write exactly `size` bytes, end.
  void begin_entry(const std::string& name, uint64_t size);
  void write(const void* data, size_t n);
  void end_entry();
  void add(const std::string& name, const void* data, size_t size);
  void add(const std::string& name, const std::string& bytes) { add(name, bytes.data(), bytes.size()); }

  // Writes the central directory and end records, flushes, fsyncs and closes.
  void finish();
  uint64_t offset() const { return offset_; }

  static constexpr uint64_t kAlignment = 64;  // torch's kFieldAlignment

 private:
  struct Written {
    std::string name;
    uint32_t crc;
    uint64_t size, header_offset;
    bool zip64;
  };
  void put(const void* data, size_t n);  // buffered write, advances offset_

  std::string path_;
  FILE* f_ = nullptr;
  bool force_zip64_;
  uint64_t offset_ = 0;
  std::vector<Written> written_;
  bool in_entry_ = false;
  Written cur_{};
  uint64_t cur_written_ = 0;
  bool finished_ = false;
};

}  // namespace wan

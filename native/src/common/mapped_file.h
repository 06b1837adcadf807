// A read-only memory mapping of a whole file. Tensors loaded from checkpoints alias it
// (no copy) and hold a shared_ptr so the mapping lives as long as any tensor does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace wan {

class MappedFile {
 public:
  // Maps `path` read-only. Throws wan::Error naming the file on failure.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel this process is done with [p, p + n) (after copying it out), so a copy-mode
  // load does not hold the file's pages in its resident set on top of the copies.
  void drop(const uint8_t* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; throws naming the file.
std::string read_text_file(const std::string& path);
// Writes atomically: to path + ".tmp", then rename.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace wan

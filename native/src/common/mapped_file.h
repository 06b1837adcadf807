// A read-only memory mapping of a whole file. Tensors loaded from checkpoints alias it
// (no copy) and hold a shared_ptr so the mapping lives as long as any tensor does.
//
// Files changed underneath: every live mapping is registered with what the file was when it was
// mapped (size, mtime, inode; FileStamp), so the engine can refuse a job when a model file it
// reads changed since (file_change), and a fatal-signal handler can name the file behind a
// SIGBUS. Reading a mapped page past the end of a file truncated after mapping raises SIGBUS;
// install_fatal_signal_handler() (done by MappedFile::open) turns it into one line on stderr
// naming the file, removes the paths given to set_fatal_cleanup (a server's server.json), and
// exits the process with status 135 (128 + SIGBUS, what the signal itself would give), instead
// of a silent death that leaves those files behind.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wan {

// What a file was when it was mapped.
struct FileStamp {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t dev = 0, ino = 0;
};

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
  const FileStamp& stamp() const { return stamp_; }
  // Tells the kernel this process is done with [p, p + n) (after copying it out), so a copy-mode
  // load does not hold the file's pages in its resident set on top of the copies.
  void drop(const uint8_t* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  FileStamp stamp_;
  int slot_ = -1;  // in the signal handler's registry; -1: not registered (empty file, registry full)
};

// The stamp of the live mapping that holds address `p` (a tensor's data_ptr), if any.
bool mapped_file_stamp(const void* p, FileStamp* out);
// "" when `path` is still the file `s` describes, else what changed, e.g. "was truncated from
// 1048576 to 0 bytes", "was modified (its mtime changed)", "was removed", "was replaced by
// another file (a new inode)".
std::string file_change(const FileStamp& s);

// Installs the SIGBUS handler described above (idempotent; sigaction with SA_SIGINFO).
void install_fatal_signal_handler();
// The paths to unlink when a fatal SIGBUS ends the process (replacing earlier ones); at most 8
// paths of at most 4095 bytes, else wan::Error; relative ones are resolved against the working
// directory now. Installs the handler.
void set_fatal_cleanup(const std::vector<std::string>& paths);
// The exit status of a process ended by the handler.
constexpr int kFatalSigbusExit = 135;

// Reads a whole (small) file into a string; throws naming the file.
std::string read_text_file(const std::string& path);
// Writes atomically: to path + ".tmp", then rename.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace wan

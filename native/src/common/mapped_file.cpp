#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/error.h"

namespace wan {

namespace {
// The registry of live mappings. The signal handler reads it without locks, so each slot is a
// seqlock: a writer (under g_mu) makes `seq` odd, writes, makes it even again; the handler takes
// a slot only when it read the same even `seq` before and after copying it. Mappings beyond
// kSlots (never seen: a model maps a dozen files) stay unnamed in the handler's message.
constexpr int kSlots = 512;
constexpr size_t kPathMax = 512;
struct Slot {
  std::atomic<uint32_t> seq{0};
  std::atomic<uintptr_t> base{0};  // 0: free
  std::atomic<size_t> size{0};
  char path[kPathMax];
};
Slot g_slots[kSlots];
std::mutex g_mu;
std::map<uintptr_t, std::pair<size_t, FileStamp>>& stamps() {  // base -> (size, stamp); under g_mu
  static auto* m = new std::map<uintptr_t, std::pair<size_t, FileStamp>>();
  return *m;
}

int register_range(const uint8_t* base, size_t size, const FileStamp& stamp) {
  std::lock_guard<std::mutex> lock(g_mu);
  stamps()[reinterpret_cast<uintptr_t>(base)] = {size, stamp};
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[i];
    if (s.base.load() != 0) continue;
    s.seq.fetch_add(1);  // odd: being written
    std::strncpy(s.path, stamp.path.c_str(), kPathMax - 1);
    s.path[kPathMax - 1] = 0;
    s.size.store(size);
    s.base.store(reinterpret_cast<uintptr_t>(base));
    s.seq.fetch_add(1);
    return i;
  }
  return -1;
}

void unregister_range(const uint8_t* base, int slot) {
  std::lock_guard<std::mutex> lock(g_mu);
  stamps().erase(reinterpret_cast<uintptr_t>(base));
  if (slot < 0) return;
  Slot& s = g_slots[slot];
  s.seq.fetch_add(1);
  s.base.store(0);
  s.size.store(0);
  s.seq.fetch_add(1);
}

// Paths to unlink on a fatal signal: written by set_fatal_cleanup (count 0 while it writes).
constexpr int kCleanupMax = 8;
constexpr size_t kCleanupPathMax = 4096;
char g_cleanup[kCleanupMax][kCleanupPathMax];
std::atomic<int> g_cleanup_n{0};

// Async-signal-safe output: a fixed buffer flushed with write(2).
struct SignalLine {
  char buf[1024];
  size_t n = 0;
  void flush() {
    size_t off = 0;
    while (off < n) {
      const ssize_t w = ::write(2, buf + off, n - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    n = 0;
  }
  SignalLine& operator<<(const char* s) {
    for (; *s; ++s) {
      if (n == sizeof(buf)) flush();
      buf[n++] = *s;
    }
    return *this;
  }
  SignalLine& num(uintptr_t v, int base = 10) {
    char d[32];
    int k = 0;
    do {
      const int x = int(v % uintptr_t(base));
      d[k++] = char(x < 10 ? '0' + x : 'a' + x - 10);
      v /= uintptr_t(base);
    } while (v);
    char s[34];
    int j = 0;
    if (base == 16) s[j++] = '0', s[j++] = 'x';
    while (k) s[j++] = d[--k];
    s[j] = 0;
    return *this << s;
  }
};

void on_sigbus(int, siginfo_t* info, void*) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr);
  char path[kPathMax];
  bool found = false;
  uintptr_t offset = 0, size = 0;
  for (int i = 0; i < kSlots && !found; ++i) {
    Slot& s = g_slots[i];
    const uint32_t q = s.seq.load();
    if (q & 1) continue;
    const uintptr_t b = s.base.load();
    const size_t n = s.size.load();
    if (b == 0 || a < b || a >= b + n) continue;
    std::memcpy(path, s.path, kPathMax);
    path[kPathMax - 1] = 0;
    if (s.seq.load() != q) continue;
    found = true, offset = a - b, size = n;
  }
  SignalLine line;
  line << "wanlab: fatal: SIGBUS (bus error) ";
  if (found) {
    line << "reading the memory-mapped file " << path << " at byte ";
    line.num(offset) << " of the ";
    line.num(size) << " mapped: the file was truncated or rewritten while the engine was using it; restore the "
                      "file and reopen the model";
  } else {
    line << "at address ";
    line.num(a, 16) << " (in no memory-mapped model file)";
  }
  const int n = g_cleanup_n.load();
  for (int i = 0; i < n; ++i) {
    const bool removed = ::unlink(g_cleanup[i]) == 0;
    line << (removed ? "; removed " : "; could not remove ") << g_cleanup[i];
  }
  line << "; exiting with status ";
  line.num(kFatalSigbusExit) << "\n";
  line.flush();
  ::_exit(kFatalSigbusExit);
}
}  // namespace

void install_fatal_signal_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, nullptr) != 0) fail("cannot install the SIGBUS handler: ", std::strerror(errno));
  });
}

void set_fatal_cleanup(const std::vector<std::string>& given) {
  if (given.size() > size_t(kCleanupMax))
    fail("fatal cleanup takes at most ", kCleanupMax, " paths, got ", given.size());
  std::vector<std::string> paths;
  for (const std::string& p : given) {
    if (p.empty() || p[0] == '/') {
      paths.push_back(p);
      continue;
    }
    char cwd[4096];  // the handler unlinks by absolute path: the working directory may change
    if (!::getcwd(cwd, sizeof(cwd))) fail("fatal cleanup: cannot resolve '", p, "': ", std::strerror(errno));
    paths.push_back(std::string(cwd) + "/" + p);
  }
  for (const std::string& p : paths) {
    if (p.empty()) fail("fatal cleanup: a path is empty");
    if (p.size() >= kCleanupPathMax) fail("fatal cleanup: path of ", p.size(), " bytes is longer than ", kCleanupPathMax - 1);
    if (p.find('\0') != std::string::npos) fail("fatal cleanup: path '", p, "' holds a NUL byte");
  }
  install_fatal_signal_handler();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  g_cleanup_n.store(0);
  for (size_t i = 0; i < paths.size(); ++i) std::memcpy(g_cleanup[i], paths[i].c_str(), paths[i].size() + 1);
  g_cleanup_n.store(int(paths.size()));
}

bool mapped_file_stamp(const void* p, FileStamp* out) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = stamps();
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  if (a >= it->first + it->second.first) return false;
  *out = it->second.second;
  return true;
}

std::string file_change(const FileStamp& s) {
  struct stat st {};
  if (::stat(s.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return "was removed";
    return concat("can no longer be read (", std::strerror(errno), ")");
  }
  if (uint64_t(st.st_dev) != s.dev || uint64_t(st.st_ino) != s.ino) return "was replaced by another file (a new inode)";
  if (int64_t(st.st_size) != s.size)
    return concat(int64_t(st.st_size) < s.size ? "was truncated from " : "grew from ", s.size, " to ",
                  int64_t(st.st_size), " bytes");
  const int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime != s.mtime_ns) return "was modified (its mtime changed)";
  return "";
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat ", path, ": ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, " is not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  f->stamp_ = {path, int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
               uint64_t(st.st_dev), uint64_t(st.st_ino)};
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot mmap ", path, ": ", std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    install_fatal_signal_handler();
    f->slot_ = register_range(f->data_, f->size_, f->stamp_);
  }
  ::close(fd);  // the mapping stays valid after close
  return f;
}

MappedFile::~MappedFile() {
  if (data_ == nullptr) return;
  unregister_range(data_, slot_);  // before the range can be mapped again
  munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::drop(const uint8_t* p, size_t n) const {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);  // whole pages inside the range only
  uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) fail("cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  ok = (std::fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail("cannot write ", tmp, ": ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno));
}

}  // namespace wan

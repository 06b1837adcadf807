#include "common/proc_status.h"

#include <fstream>

namespace wan {

namespace {
int64_t kb_line_bytes(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::stoll(line.substr(key.size() + 1)) * 1024;  // kB
  return -1;
}
}  // namespace

int64_t proc_status_bytes(const std::string& key) { return kb_line_bytes("/proc/self/status", key); }
int64_t meminfo_bytes(const std::string& key) { return kb_line_bytes("/proc/meminfo", key); }

}  // namespace wan

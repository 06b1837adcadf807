#include "common/proc_status.h"

#include <fstream>

namespace wan {

int64_t proc_status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::stoll(line.substr(key.size() + 1)) * 1024;  // kB
  return -1;
}

}  // namespace wan

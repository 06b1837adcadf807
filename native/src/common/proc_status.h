// Memory figures of this process from /proc/self/status, and of the machine from /proc/meminfo (Linux).
#pragma once
#include <cstdint>
#include <string>

namespace wan {

// A "Key:" line of /proc/self/status in bytes (e.g. "VmRSS:", "VmHWM:"); -1 where absent.
int64_t proc_status_bytes(const std::string& key);
// A "Key:" line of /proc/meminfo in bytes (e.g. "MemAvailable:", "MemTotal:"); -1 where absent.
int64_t meminfo_bytes(const std::string& key);

}  // namespace wan

// Memory figures of this process from /proc/self/status (Linux).
#pragma once
#include <cstdint>
#include <string>

namespace wan {

// A "Key:" line of /proc/self/status in bytes (e.g. "VmRSS:", "VmHWM:"); -1 where absent.
int64_t proc_status_bytes(const std::string& key);

}  // namespace wan

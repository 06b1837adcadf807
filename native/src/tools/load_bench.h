// Load-time and resident-memory measurement of a whole model: mmap (tensors alias the files) vs
// copy (tensors in owned memory), optionally touching every weight once as a first forward would.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace wan {

// Returns {"mode", "load_seconds", "touch_seconds", "rss_before_bytes", "rss_after_load_bytes",
// "rss_after_touch_bytes", "peak_rss_bytes", "params", "bytes"}. Linux /proc figures.
nlohmann::json bench_load(const std::string& dir, bool mmap, bool touch);

}  // namespace wan

#include "common/log.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace wan {

LogLevel parse_log_level(const std::string& s) {
  if (s == "error") return LogLevel::Error;
  if (s == "warn") return LogLevel::Warn;
  if (s == "info") return LogLevel::Info;
  if (s == "debug") return LogLevel::Debug;
  fail("log level must be one of error, warn, info, debug, got '", s, "'");
}

const char* log_level_name(LogLevel l) {
  switch (l) {
    case LogLevel::Error: return "error";
    case LogLevel::Warn: return "warn";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
  }
  return "?";
}

LogLevel env_log_level() {
  const char* e = std::getenv("WANLAB_LOG_LEVEL");
  if (!e || !*e) return LogLevel::Warn;
  try {
    return parse_log_level(e);
  } catch (const Error& err) {
    fail("WANLAB_LOG_LEVEL: ", err.what());
  }
}

namespace {
// mkdir -p
void make_dirs(const std::string& dir) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
      fail("log directory ", dir, ": cannot create ", path, ": ", std::strerror(errno));
  }
}

std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const int ms = int(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

struct ThreadLog {
  std::shared_ptr<Logger> logger;
  int rank = -1;
  std::string device;
};
thread_local ThreadLog tl;

Logger& fallback() {
  static Logger* l = [] {  // leaked: threads may log during exit
    LogLevel level = LogLevel::Warn;
    try {
      level = env_log_level();
    } catch (const Error& e) {
      std::fprintf(stderr, "%s (using warn)\n", e.what());
    }
    return new Logger(level);
  }();
  return *l;
}
Logger& current() { return tl.logger ? *tl.logger : fallback(); }
}  // namespace

Logger::Logger(LogLevel level, const std::string& dir, int node_rank) : level_(level), dir_(dir), node_rank_(node_rank) {
  if (!dir_.empty()) make_dirs(dir_);
}

Logger::~Logger() {
  for (auto& [k, f] : files_) std::fclose(f);
}

void Logger::write(LogLevel l, int rank, const std::string& device, const std::string& msg) {
  if (!enabled(l)) return;
  const std::string who = rank >= 0 ? concat("[rank ", rank, device.empty() ? "" : " ", device, "]")
                                    : concat("[node ", node_rank_, "]");
  const std::string line = concat(who, " ", timestamp(), " ", log_level_name(l), ": ", msg, "\n");
  std::lock_guard<std::mutex> lk(mu_);
  if (dir_.empty() || l <= LogLevel::Warn) std::fputs(line.c_str(), stderr);
  if (dir_.empty()) return;
  const int key = rank >= 0 ? rank : -1 - node_rank_;
  FILE*& f = files_[key];
  if (!f) {
    const std::string path = dir_ + "/" + (rank >= 0 ? concat("rank-", rank) : concat("node-", node_rank_)) + ".log";
    f = std::fopen(path.c_str(), "a");
    if (!f) {
      files_.erase(key);
      std::fprintf(stderr, "%s (cannot open %s: %s)\n", line.c_str(), path.c_str(), std::strerror(errno));
      return;
    }
  }
  std::fputs(line.c_str(), f);
  std::fflush(f);
}

LogScope::LogScope(std::shared_ptr<Logger> logger, int rank, std::string device)
    : prev_logger_(std::move(tl.logger)), prev_rank_(tl.rank), prev_device_(std::move(tl.device)) {
  tl.logger = std::move(logger);
  tl.rank = rank;
  tl.device = std::move(device);
}

LogScope::~LogScope() {
  tl.logger = std::move(prev_logger_);
  tl.rank = prev_rank_;
  tl.device = std::move(prev_device_);
}

bool log_enabled(LogLevel l) { return current().enabled(l); }

void log_line(LogLevel l, const std::string& msg) { current().write(l, tl.rank, tl.device, msg); }

}  // namespace wan

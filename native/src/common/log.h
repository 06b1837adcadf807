// Logging with levels, rank-prefixed lines and one file per rank.
//
//   [rank 2 cpu:2] 2026-11-26T01:25:18.123Z info: request 3 done in 1.20 s (compute 0.90 s, comm 0.30 s)
//
// A Logger is a level and, optionally, a directory: each rank's lines go to DIR/rank-K.log (K the
// global rank), lines from other threads of node N to DIR/node-N.log. Without a directory lines go
// to stderr; with one, stderr still gets warnings and errors. The calling thread's logger and rank
// are set by a LogScope (a device group's worker threads, the engine around a request); threads
// without one log to stderr at the level of $WANLAB_LOG_LEVEL (default warn).
#pragma once
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/error.h"

namespace wan {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// "error", "warn", "info", "debug"; anything else is an error naming the value.
LogLevel parse_log_level(const std::string& s);
const char* log_level_name(LogLevel l);
// $WANLAB_LOG_LEVEL, else warn.
LogLevel env_log_level();

class Logger {
 public:
  // dir "": stderr only. The directory is created if missing.
  Logger(LogLevel level, const std::string& dir = "", int node_rank = 0);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  bool enabled(LogLevel l) const { return int(l) <= int(level_); }
  LogLevel level() const { return level_; }
  const std::string& dir() const { return dir_; }
  // rank < 0: a thread outside the ranks (prefix "[node N]").
  void write(LogLevel l, int rank, const std::string& device, const std::string& msg);

 private:
  LogLevel level_;
  std::string dir_;
  int node_rank_;
  std::mutex mu_;
  std::map<int, FILE*> files_;  // rank (or -1 - node) -> open file
};

// Sets the calling thread's logger and rank until destroyed (the previous ones come back).
class LogScope {
 public:
  LogScope(std::shared_ptr<Logger> logger, int rank = -1, std::string device = "");
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  std::shared_ptr<Logger> prev_logger_;
  int prev_rank_;
  std::string prev_device_;
};

bool log_enabled(LogLevel l);
void log_line(LogLevel l, const std::string& msg);

template <typename... Args>
void log_error(const Args&... a) {
  if (log_enabled(LogLevel::Error)) log_line(LogLevel::Error, concat(a...));
}
template <typename... Args>
void log_warn(const Args&... a) {
  if (log_enabled(LogLevel::Warn)) log_line(LogLevel::Warn, concat(a...));
}
template <typename... Args>
void log_info(const Args&... a) {
  if (log_enabled(LogLevel::Info)) log_line(LogLevel::Info, concat(a...));
}
template <typename... Args>
void log_debug(const Args&... a) {
  if (log_enabled(LogLevel::Debug)) log_line(LogLevel::Debug, concat(a...));
}

}  // namespace wan

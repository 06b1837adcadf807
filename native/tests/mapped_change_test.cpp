// Model files changed underneath a loaded engine (pipeline/t2v.h, common/mapped_file.h): a job
// is refused, naming the file and what changed, before any compute; and a SIGBUS from reading a
// mapped file truncated while in use is a logged exit (status 135) that removes the registered
// cleanup files, not a silent death.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/mapped_file.h"
#include "pipeline/t2v.h"
#include "test.h"

using namespace wan;

namespace {
std::string dit_file(const std::string& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") return e.path().string();
  throw wantest::Failure{"no .safetensors file in " + dir};
}
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST(a_model_file_changed_after_loading_is_refused_before_the_next_job_naming_the_file) {
  const std::string dir = wantest::tiny_model("official", 11);  // this test's own copy
  const std::string dit = dit_file(dir);
  const T2VEngine e(dir);
  const T2VRequest r = wantest::tiny_request(32, 32, 1, 1, 1.0);
  EXPECT(e.generate(r).latents.defined());

  struct stat st {};
  EXPECT(::stat(dit.c_str(), &st) == 0);
  const struct timespec older[2] = {{0, UTIME_OMIT}, {st.st_mtim.tv_sec - 3600, 0}};
  EXPECT(::utimensat(AT_FDCWD, dit.c_str(), older, 0) == 0);
  EXPECT_ERROR(e.generate(r), "model file " + dit + " was modified (its mtime changed) since the engine loaded it",
               "reopen the model");
  EXPECT_ERROR(e.memory_report(r), dit, "was modified");
  EXPECT_ERROR(e.validate(r), dit, "was modified");
  const struct timespec back[2] = {{0, UTIME_OMIT}, st.st_mtim};  // the same file again: accepted
  EXPECT(::utimensat(AT_FDCWD, dit.c_str(), back, 0) == 0);
  EXPECT(e.generate(r).latents.defined());

  EXPECT(::truncate(dit.c_str(), st.st_size / 2) == 0);
  EXPECT_ERROR(e.generate(r), "model file " + dit + " was truncated from " + std::to_string(st.st_size) + " to " +
                                  std::to_string(st.st_size / 2) + " bytes since the engine loaded it");
}

TEST(a_model_file_replaced_or_removed_after_loading_is_refused_naming_the_file) {
  const std::string dir = wantest::tiny_model("official", 12);
  const std::string dit = dit_file(dir);
  const T2VEngine e(dir);
  const T2VRequest r = wantest::tiny_request(32, 32, 1, 1, 1.0);
  std::filesystem::copy_file(dit, dit + ".new");
  std::filesystem::rename(dit + ".new", dit);  // same bytes, another inode: not the file the engine read
  EXPECT_ERROR(e.generate(r), dit, "was replaced by another file");
  std::filesystem::remove(dit);
  EXPECT_ERROR(e.generate(r), dit, "was removed");
}

// A child process maps a file, registers a cleanup file, truncates the mapped file and reads a
// page past its new end: the SIGBUS handler names the file on stderr, removes the cleanup file
// and exits 135.
TEST(a_sigbus_on_a_truncated_mapped_file_is_logged_removes_the_cleanup_files_and_exits_135) {
  const std::string data = wantest::scratch("sigbus-weights.bin"), cleanup = wantest::scratch("sigbus-server.json");
  const std::string err = wantest::scratch("sigbus-stderr.txt");
  wantest::write_bytes(data, std::string(1 << 16, 'w'));
  wantest::write_bytes(cleanup, "{}");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, 2) < 0) ::_exit(2);
    try {
      std::shared_ptr<MappedFile> f = MappedFile::open(data);
      set_fatal_cleanup({cleanup});
      if (::truncate(data.c_str(), 0) != 0) ::_exit(3);
      volatile uint8_t sink = f->data()[40000];  // SIGBUS: the page is past the end now
      (void)sink;
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(5);
  }
  EXPECT(pid > 0);
  int status = 0;
  EXPECT(::waitpid(pid, &status, 0) == pid);
  const std::string log = slurp(err);
  std::printf("     child: %s", log.c_str());
  EXPECT(WIFEXITED(status));
  EXPECT(WEXITSTATUS(status) == kFatalSigbusExit);
  EXPECT(log.find("wanlab: fatal: SIGBUS (bus error) reading the memory-mapped file " + data + " at byte 40000") !=
         std::string::npos);
  EXPECT(log.find("truncated or rewritten while the engine was using it") != std::string::npos);
  EXPECT(log.find("removed " + cleanup) != std::string::npos);
  EXPECT(!std::filesystem::exists(cleanup));
}

TEST(fatal_cleanup_refuses_too_many_or_unusable_paths) {
  EXPECT_ERROR(set_fatal_cleanup(std::vector<std::string>(9, "/tmp/x")), "at most 8 paths, got 9");
  EXPECT_ERROR(set_fatal_cleanup({""}), "a path is empty");
  EXPECT_ERROR(set_fatal_cleanup({"/" + std::string(5000, 'a')}), "longer than 4095");
  set_fatal_cleanup({});
}

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "test.h"

namespace wantest {
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
std::string scratch_dir() {
  // A leaked string: the atexit cleanup runs after statics are destroyed.
  static const std::string* dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("wanlab-tests-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    auto* s = new std::string(d.string());
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return s;
  }();
  return *dir;
}
}  // namespace wantest

int main(int argc, char** argv) {
  std::string filter = argc > 1 ? argv[1] : "";
  int passed = 0, failed = 0;
  for (const auto& c : wantest::registry()) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    try {
      c.fn();
      ++passed;
      std::cout << "ok   " << c.name << "\n";
    } catch (const wantest::Failure& f) {
      ++failed;
      std::cout << "FAIL " << c.name << ": " << f.what << "\n";
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << c.name << ": unexpected exception: " << e.what() << "\n";
    }
  }
  std::cout << "wanlab-tests: " << passed << " passed, " << failed << " failed\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}

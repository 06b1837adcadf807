#include "common/fs.h"

#include <ftw.h>
#include <unistd.h>

#include <cstdio>

namespace wan {

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return std::remove(path) == 0 ? 0 : 0; }
}  // namespace

void remove_tree(const std::string& path) {
  // FTW_DEPTH: children before their directory; FTW_PHYS: never follow symbolic links.
  nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace wan

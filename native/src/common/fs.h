// File-system helpers the engine and its tests share.
#pragma once
#include <string>

namespace wan {

// Removes a file or a directory tree (like rm -rf; missing is fine). Written over nftw(3)
// rather than std::filesystem::remove_all: PyTorch's libtorch.so (2.11 wheels) exports its
// own std::filesystem symbols, and calls to remove_all bound to that copy crash.
void remove_tree(const std::string& path);

}  // namespace wan

// The inverse of layout_key (checkpoint/layout.h): a file's tensor name in its layout mapped to
// the canonical name the models use. Internal to checkpoint/.
#pragma once
#include <string>

#include "checkpoint/layout.h"

namespace wan {

// The canonical name of `key` of component `c` in a file of `layout`, "" for keys that carry no
// weight of ours (tied copies, tokenizer blobs, fp8 markers); a key of no known tensor is an
// error naming `file`, the key, the component and the layout.
std::string to_canonical(Layout layout, Component c, const std::string& key, const std::string& file);

}  // namespace wan

// torch's names for the dtypes a checkpoint stores: the legacy typed storage classes
// (torch.FloatStorage, ...) and the torch.dtype objects (torch.float32, ...), as the
// state-dict writer emits them; the unpickler's allowlist (pickle_torch.cpp) reads the same
// tables. Internal to formats/pickle*.cpp.
#pragma once
#include "common/dtype.h"

namespace wan::pickle {

// F32 -> "FloatStorage" (the class torch.save names for a typed storage of that dtype).
const char* typed_storage_name(DType t);
// F32 -> "float32" (torch.dtype.__reduce__'s canonical name).
const char* torch_dtype_name(DType t);

}  // namespace wan::pickle

// A restricted unpickler for torch.save's data.pkl, and the matching writer.
//
// Python's pickle is a small stack machine whose GLOBAL and REDUCE opcodes import and call
// arbitrary functions: loading an untrusted pickle with Python runs its code. This machine
// knows no Python at all. GLOBAL / STACK_GLOBAL resolve against a fixed allowlist (the tensor
// rebuild functions, typed storages, dtypes, OrderedDict, torch.Size) and anything else is an
// error at the GLOBAL itself, before any REDUCE could use it; REDUCE, NEWOBJ and BUILD then only
// act on those allowlisted names, and a "call" merely records what torch would have built. The
// idea follows torch/_weights_only_unpickler.py, minus everything a state dict does not need.
//
// Values live in an arena owned by the result, so memo references (even cycles) are plain
// pointers and nothing is freed recursively.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace wan::pickle {

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

// The allowlisted globals. Storage types and dtypes carry their DType in Value::dtype.
enum class Global : uint8_t {
  OrderedDict,                // collections.OrderedDict
  RebuildTensor,              // torch._utils._rebuild_tensor (storage, offset, size, stride)
  RebuildTensorV2,            // torch._utils._rebuild_tensor_v2 (..., requires_grad, hooks[, metadata])
  RebuildTensorV3,            // torch._utils._rebuild_tensor_v3 (..., hooks, dtype[, metadata]): newer dtypes (float8)
  RebuildParameter,           // torch._utils._rebuild_parameter (data, requires_grad, hooks)
  RebuildParameterWithState,  // torch._utils._rebuild_parameter_with_state (..., state)
  RebuildFromTypeV2,          // torch._tensor._rebuild_from_type_v2 (func, type, args, state)
  Size,                       // torch.Size
  TensorType,                 // torch.Tensor / torch.nn.parameter.Parameter: only as _rebuild_from_type_v2's type
  TypedStorage,               // torch.FloatStorage, torch.BFloat16Storage, ... (dtype set)
  UntypedStorage,             // torch.UntypedStorage (bytes; dtype comes from _rebuild_tensor_v3)
  DTypeValue,                 // torch.float32, torch.float8_e4m3fn, ... (dtype set)
};

struct Value;

// A persistent id ('storage', storage_type, key, location, numel): the zip record data/<key>.
struct StorageInfo {
  std::string key, location;
  std::optional<DType> dtype;  // nullopt: untyped, numel counts bytes
  int64_t numel = 0;
};

// What _rebuild_tensor_v2/_v3 would build: a strided view of a storage.
struct TensorInfo {
  const Value* storage = nullptr;  // Kind::Storage
  DType dtype = DType::F32;
  int64_t offset = 0;  // in elements
  std::vector<int64_t> size, stride;
};

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;   // Int; Bool as 0/1
  double f = 0;    // Float
  std::string s;   // Str, Bytes; Global: "module.name"
  std::vector<Value*> items;  // Tuple, List; Dict: key0, value0, key1, value1, ... in insertion order
  Global global = Global::OrderedDict;
  std::optional<DType> dtype;  // Global TypedStorage / DTypeValue
  std::unique_ptr<StorageInfo> storage;
  std::unique_ptr<TensorInfo> tensor;
};

struct Unpickled {
  std::deque<Value> values;  // owns every value; deque keeps addresses stable
  const Value* root = nullptr;
};

// Runs `data` through the restricted machine. `context` names the source in errors (the .pth
// path): "refusing global posix.system in x.pth". Every read is bounds-checked; truncation,
// stack underflow, bad memo indices and oversized inputs are errors, never crashes.
std::unique_ptr<Unpickled> unpickle(const uint8_t* data, size_t size, const std::string& context);

// Python-style type name of a value, for error messages ("dict", "tensor", ...).
const char* kind_name(Kind k);

// One tensor of a state dict to write: stored contiguous in its own storage.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

// The data.pkl that torch.save(OrderedDict(...)) writes for these tensors, byte for byte as
// CPython's pickler emits it at protocol 2 (same memo numbering, SETITEMS batches of 1000):
// tensor i lives in storage key "i" at location 'cpu', offset 0, contiguous strides,
// requires_grad False, empty backward hooks. dtypes with a legacy typed storage use
// _rebuild_tensor_v2 with torch.<X>Storage; float8 uses what torch writes for dtypes
// without one (torch >= 2.2, pytorch#114662; 2.1 could not save float8 at all):
// _rebuild_tensor_v3 over torch.UntypedStorage (numel in bytes) plus the dtype. Those files
// do not load in torch < 2.2.
std::string pickle_state_dict(const std::vector<TensorSpec>& tensors);

}  // namespace wan::pickle

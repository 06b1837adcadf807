// The torch side of the restricted unpickler: which GLOBALs a checkpoint may name (tensor
// rebuild functions, typed and untyped storages, dtypes, OrderedDict, torch.Size), the
// persistent ids that point at storages, and what the allowed calls build — a TensorInfo
// where torch would build a tensor.
#include "formats/pickle_torch.h"

#include "formats/pickle_machine.h"

namespace wan::pickle {

namespace {

struct StorageName {
  const char* name;
  DType dtype;
};
// torch.<X>Storage for every DType we hold. The float8 names are not torch classes (torch writes
// float8 as UntypedStorage + dtype), but some converters emit them, and they are unambiguous.
const StorageName kStorages[] = {
    {"FloatStorage", DType::F32},  {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},  {"CharStorage", DType::I8},    {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL},  {"Float8_e4m3fnStorage", DType::F8_E4M3}, {"Float8_e5m2Storage", DType::F8_E5M2},
};
// torch.<dtype> as torch.dtype.__reduce__ names them (the canonical name: torch.float is float32).
const StorageName kDTypes[] = {
    {"float32", DType::F32}, {"float64", DType::F64},  {"float16", DType::F16},
    {"bfloat16", DType::BF16}, {"int64", DType::I64},  {"int32", DType::I32},
    {"int16", DType::I16},   {"int8", DType::I8},      {"uint8", DType::U8},
    {"bool", DType::BOOL},   {"float8_e4m3fn", DType::F8_E4M3}, {"float8_e5m2", DType::F8_E5M2},
};

}  // namespace

const char* typed_storage_name(DType t) {
  for (const auto& s : kStorages)
    if (s.dtype == t) return s.name;
  fail("internal: no storage name for ", dtype_name(t));
}
const char* torch_dtype_name(DType t) {
  for (const auto& s : kDTypes)
    if (s.dtype == t) return s.name;
  fail("internal: no torch dtype name for ", dtype_name(t));
}

Value* Machine::resolve(const std::string& module, const std::string& name) {
  auto global = [&](Global g, std::optional<DType> t = std::nullopt) {
    Value* v = make(Kind::Global);
    v->s = module + "." + name;
    v->global = g;
    v->dtype = t;
    return v;
  };
  if (module == "collections" && name == "OrderedDict") return global(Global::OrderedDict);
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor") return global(Global::RebuildTensor);
    if (name == "_rebuild_tensor_v2") return global(Global::RebuildTensorV2);
    if (name == "_rebuild_tensor_v3") return global(Global::RebuildTensorV3);
    if (name == "_rebuild_parameter") return global(Global::RebuildParameter);
    if (name == "_rebuild_parameter_with_state") return global(Global::RebuildParameterWithState);
    if (starts_with(name, "_rebuild_"))
      fail("unsupported tensor kind torch._utils.", name, " in ", ctx_, " (only dense CPU/CUDA tensors load)");
  }
  if (module == "torch._tensor" && name == "_rebuild_from_type_v2") return global(Global::RebuildFromTypeV2);
  if (module == "torch.nn.parameter" && name == "Parameter") return global(Global::TensorType);
  // torch.save names the untyped storage by its defining module (torch 2.13 checked).
  if (module == "torch.storage" && name == "UntypedStorage") return global(Global::UntypedStorage);
  // Old torch pickled CUDA tensors' storages as torch.cuda.<X>Storage; the bytes are the same.
  if (module == "torch" || module == "torch.cuda") {
    if (module == "torch" && name == "Size") return global(Global::Size);
    if (module == "torch" && name == "Tensor") return global(Global::TensorType);
    if (module == "torch" && name == "UntypedStorage") return global(Global::UntypedStorage);
    for (const auto& s : kStorages)
      if (name == s.name) return global(Global::TypedStorage, s.dtype);
    if (module == "torch")
      for (const auto& t : kDTypes)
        if (name == t.name) return global(Global::DTypeValue, t.dtype);
    if (name.size() > 7 && ends_with(name, "Storage"))
      fail("unsupported storage type ", module, ".", name, " in ", ctx_);
  }
  fail("refusing global ", module, ".", name, " in ", ctx_,
       ": a checkpoint may only reference tensor rebuild functions, storages, dtypes and OrderedDict "
       "(loading it with plain torch.load would run this)");
}

int64_t Machine::as_int(const Value* v, const char* what) {
  if (v->kind != Kind::Int) bad(concat(what, " is a ", kind_name(v->kind), ", expected int"));
  return v->i;
}

std::vector<int64_t> Machine::int_tuple(const Value* v, const char* what) {
  if (v->kind != Kind::Tuple && v->kind != Kind::List) bad(concat(what, " is a ", kind_name(v->kind), ", expected a tuple"));
  if (v->items.size() > kMaxDims) bad(concat(what, " has ", v->items.size(), " dimensions"));
  std::vector<int64_t> out;
  for (const Value* x : v->items) {
    int64_t i = as_int(x, what);
    if (i < 0) bad(concat(what, " has a negative entry ", i));
    out.push_back(i);
  }
  return out;
}

void Machine::expect_tuple(const Value* args, size_t lo, size_t hi, const Value* fn) {
  if (args->kind != Kind::Tuple) bad(concat(fn->s, " called with ", kind_name(args->kind), " arguments"));
  size_t k = args->items.size();
  if (k < lo || k > hi) bad(concat(fn->s, " called with ", k, " arguments"));
}

Value* Machine::persistent(const Value* pid) {
  // ('storage', storage_type, key, location, numel), as torch.serialization._save's persistent_id.
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    bad("persistent id is not a ('storage', type, key, location, numel) tuple");
  const Value* type = pid->items[1];
  const Value* key = pid->items[2];
  const Value* loc = pid->items[3];
  if (type->kind != Kind::Global || (type->global != Global::TypedStorage && type->global != Global::UntypedStorage))
    bad("persistent id names no storage type");
  if (key->kind != Kind::Str || key->s.empty() || loc->kind != Kind::Str) bad("persistent id has a bad key or location");
  int64_t numel = as_int(pid->items[4], "storage numel");
  if (numel < 0) bad("negative storage size");
  Value* v = make(Kind::Storage);
  v->storage = std::make_unique<StorageInfo>();
  v->storage->key = key->s;
  v->storage->location = loc->s;
  v->storage->dtype = type->global == Global::TypedStorage ? type->dtype : std::nullopt;
  v->storage->numel = numel;
  return v;
}

Value* Machine::rebuild_tensor(Global kind, const Value* args) {
  const Value* storage = args->items[0];
  if (storage->kind != Kind::Storage) bad(concat("tensor storage is a ", kind_name(storage->kind)));
  auto t = std::make_unique<TensorInfo>();
  t->storage = storage;
  t->offset = as_int(args->items[1], "storage offset");
  if (t->offset < 0) bad("negative storage offset");
  t->size = int_tuple(args->items[2], "tensor size");
  t->stride = int_tuple(args->items[3], "tensor stride");
  if (t->size.size() != t->stride.size()) bad("tensor size and stride differ in length");
  if (kind == Global::RebuildTensorV3) {
    const Value* dt = args->items[6];
    if (dt->kind != Kind::Global || dt->global != Global::DTypeValue) bad("_rebuild_tensor_v3 without a dtype");
    t->dtype = *dt->dtype;
    // torch writes v3 over an UntypedStorage; a typed one must agree with the dtype.
    if (storage->storage->dtype && *storage->storage->dtype != t->dtype) bad("_rebuild_tensor_v3 dtype contradicts its storage");
  } else {
    if (!storage->storage->dtype) bad("untyped storage without a dtype (expected _rebuild_tensor_v3)");
    t->dtype = *storage->storage->dtype;
  }
  Value* v = make(Kind::Tensor);
  v->tensor = std::move(t);
  return v;
}

Value* Machine::call(const Value* fn, const Value* args) {
  if (fn->kind != Kind::Global) bad(concat("REDUCE on a ", kind_name(fn->kind)));
  switch (fn->global) {
    case Global::OrderedDict: {
      expect_tuple(args, 0, 1, fn);
      Value* d = make(Kind::Dict);
      if (!args->items.empty()) {  // OrderedDict([(k, v), ...])
        const Value* pairs = args->items[0];
        if (pairs->kind != Kind::List && pairs->kind != Kind::Tuple) bad("OrderedDict argument is not a list of pairs");
        for (const Value* p : pairs->items) {
          if ((p->kind != Kind::Tuple && p->kind != Kind::List) || p->items.size() != 2) bad("OrderedDict item is not a pair");
          d->items.push_back(p->items[0]);
          d->items.push_back(p->items[1]);
        }
      }
      return d;
    }
    case Global::Size: {
      expect_tuple(args, 0, 1, fn);
      if (args->items.empty()) return make(Kind::Tuple);
      int_tuple(args->items[0], "torch.Size");
      return args->items[0];
    }
    case Global::RebuildTensor:
      expect_tuple(args, 4, 4, fn);
      return rebuild_tensor(fn->global, args);
    case Global::RebuildTensorV2:
      expect_tuple(args, 6, 7, fn);  // requires_grad, backward_hooks, [metadata] are ignored
      return rebuild_tensor(fn->global, args);
    case Global::RebuildTensorV3:
      expect_tuple(args, 7, 8, fn);
      return rebuild_tensor(fn->global, args);
    case Global::RebuildParameter:
    case Global::RebuildParameterWithState: {
      size_t n = fn->global == Global::RebuildParameter ? 3 : 4;
      expect_tuple(args, n, n, fn);
      Value* data = args->items[0];
      if (data->kind != Kind::Tensor) bad(concat("parameter data is a ", kind_name(data->kind)));
      return data;  // a Parameter is its data; requires_grad and state do not matter here
    }
    case Global::RebuildFromTypeV2: {
      // (func, new_type, args, state): tensors with Python attributes. Build the plain tensor.
      expect_tuple(args, 4, 4, fn);
      const Value* inner = args->items[0];
      const Value* type = args->items[1];
      if (inner->kind != Kind::Global ||
          (inner->global != Global::RebuildTensor && inner->global != Global::RebuildTensorV2 &&
           inner->global != Global::RebuildTensorV3 && inner->global != Global::RebuildParameter &&
           inner->global != Global::RebuildParameterWithState))
        bad("_rebuild_from_type_v2 of something other than a tensor rebuild function");
      if (type->kind != Kind::Global || type->global != Global::TensorType) bad("_rebuild_from_type_v2 of a non-tensor type");
      return call(inner, args->items[2]);
    }
    default:
      fail("refusing to call ", fn->s, " in ", ctx_, ": it is not a function a state dict calls");
  }
}

}  // namespace wan::pickle

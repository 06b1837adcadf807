#include "formats/pickle.h"

#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "common/strings.h"

namespace wan::pickle {

namespace {

// Opcodes (CPython Lib/pickle.py names).
enum : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', BINPERSID = 'Q', REDUCE = 'R',
  BINSTRING = 'T', SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c',
  DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']',
  BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u',
  BINFLOAT = 'G', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89,
  LONG1 = 0x8a, LONG4 = 0x8b,                                        // protocol 2
  BINBYTES = 'B', SHORT_BINBYTES = 'C',                              // protocol 3
  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94, FRAME = 0x95,                                      // protocol 4
};

// Limits far above any real state dict (a 100k-tensor checkpoint needs ~3M values) that keep a
// hostile pickle from exhausting memory: values, stack slots, memo slots and container items
// can each be had for a byte or two of input (DUP, BINGET, APPEND), so each is capped.
constexpr size_t kMaxValues = size_t(1) << 23;
constexpr size_t kMaxItems = size_t(1) << 25;
constexpr size_t kMaxMarks = 1 << 16;
constexpr size_t kMaxDims = 64;
constexpr size_t kMaxGlobalLine = 256;

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

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& context)
      : d_(data), n_(size), ctx_(context), out_(std::make_unique<Unpickled>()) {}

  std::unique_ptr<Unpickled> run();

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail("malformed pickle in ", ctx_, " at byte ", op_pos_, ": ", what);
  }
  const uint8_t* take(uint64_t k) {
    if (k > n_ - pos_) fail("truncated pickle in ", ctx_, ": opcode at byte ", op_pos_, " needs ", k, " more bytes");
    const uint8_t* p = d_ + pos_;
    pos_ += k;
    return p;
  }
  uint64_t le(int bytes) {
    const uint8_t* p = take(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
    return v;
  }
  Value* make(Kind k) {
    if (out_->values.size() >= kMaxValues) fail("pickle in ", ctx_, " has more than ", kMaxValues, " values; refusing");
    out_->values.emplace_back();
    out_->values.back().kind = k;
    return &out_->values.back();
  }
  Value* make_int(int64_t v) {
    Value* x = make(Kind::Int);
    x->i = v;
    return x;
  }
  Value* make_str(Kind k, uint64_t len) {
    const uint8_t* p = take(len);
    Value* x = make(k);
    x->s.assign(reinterpret_cast<const char*>(p), len);
    return x;
  }
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) {
    if (stack_.size() >= kMaxValues) bad("pickle stack too deep");
    stack_.push_back(v);
  }
  // Counts items stored into containers against kMaxItems.
  void grow(size_t n) {
    items_ += n;
    if (items_ > kMaxItems) fail("pickle in ", ctx_, " holds more than ", kMaxItems, " container items; refusing");
  }
  Value* pop() {
    if (stack_.size() <= fence()) bad("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value*& top() {
    if (stack_.size() <= fence()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  void put_memo(uint64_t idx) {
    if (memo_.size() >= kMaxValues && !memo_.count(idx)) bad("too many memo entries");
    memo_[idx] = top();
  }
  Value* get_memo(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad(concat("memo index ", idx, " was never stored"));
    return it->second;
  }
  std::string line() {
    size_t limit = std::min(n_ - pos_, kMaxGlobalLine);
    const void* nl = std::memchr(d_ + pos_, '\n', limit);
    if (nl == nullptr) {
      if (limit == n_ - pos_) fail("truncated pickle in ", ctx_, ": GLOBAL at byte ", op_pos_, " is cut off");
      bad("GLOBAL name too long");
    }
    size_t len = static_cast<const uint8_t*>(nl) - (d_ + pos_);
    std::string s(reinterpret_cast<const char*>(d_ + pos_), len);
    pos_ += len + 1;
    return s;
  }

  Value* resolve(const std::string& module, const std::string& name);
  Value* call(const Value* fn, const Value* args);
  Value* rebuild_tensor(Global kind, const Value* args);
  Value* persistent(const Value* pid);
  std::vector<int64_t> int_tuple(const Value* v, const char* what);
  int64_t as_int(const Value* v, const char* what);
  void expect_tuple(const Value* args, size_t lo, size_t hi, const Value* fn);

  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& ctx_;
  std::unique_ptr<Unpickled> out_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  size_t items_ = 0;
  Value* none_ = nullptr;
  Value* true_ = nullptr;
  Value* false_ = nullptr;
};

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

std::unique_ptr<Unpickled> Machine::run() {
  none_ = make(Kind::None);
  true_ = make(Kind::Bool);
  true_->i = 1;
  false_ = make(Kind::Bool);
  while (true) {
    op_pos_ = pos_;
    uint8_t op = *take(1);
    switch (op) {
      case PROTO: {
        uint8_t v = *take(1);
        if (v > 5) bad(concat("unsupported pickle protocol ", int(v)));
        break;
      }
      case FRAME:  // a framing hint for buffered readers; we hold it all already
        if (le(8) > n_ - pos_) fail("truncated pickle in ", ctx_, ": frame at byte ", op_pos_, " runs past the end");
        break;
      case STOP: {
        Value* root = pop();
        out_->root = root;
        return std::move(out_);
      }
      case MARK:
        if (marks_.size() >= kMaxMarks) bad("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case POP:
        pop();
        break;
      case POP_MARK:
        pop_mark();
        break;
      case DUP:
        push(top());
        break;
      case NONE:
        push(none_);
        break;
      case NEWTRUE:
        push(true_);
        break;
      case NEWFALSE:
        push(false_);
        break;
      case BININT:
        push(make_int(int32_t(uint32_t(le(4)))));
        break;
      case BININT1:
        push(make_int(int64_t(le(1))));
        break;
      case BININT2:
        push(make_int(int64_t(le(2))));
        break;
      case LONG1:
      case LONG4: {
        uint64_t len = op == LONG1 ? le(1) : le(4);
        if (op == LONG4 && len > 0x7fffffff) bad("negative LONG4 length");
        if (len > 8) bad(concat("integer of ", len, " bytes does not fit 64 bits"));
        const uint8_t* p = take(len);
        uint64_t v = 0;
        for (size_t k = len; k-- > 0;) v = v << 8 | p[k];
        if (len > 0 && len < 8 && (p[len - 1] & 0x80)) v |= ~uint64_t(0) << (8 * len);  // sign-extend
        push(make_int(int64_t(v)));
        break;
      }
      case BINFLOAT: {
        uint64_t bits = 0;
        const uint8_t* p = take(8);
        for (int k = 0; k < 8; ++k) bits = bits << 8 | p[k];  // big-endian
        Value* x = make(Kind::Float);
        std::memcpy(&x->f, &bits, 8);
        push(x);
        break;
      }
      case SHORT_BINUNICODE:
        push(make_str(Kind::Str, le(1)));
        break;
      case BINUNICODE:
        push(make_str(Kind::Str, le(4)));
        break;
      case BINUNICODE8:
        push(make_str(Kind::Str, le(8)));
        break;
      case SHORT_BINSTRING:  // Python 2 str: read as text, as torch.load(encoding='utf-8') does
        push(make_str(Kind::Str, le(1)));
        break;
      case BINSTRING: {
        uint64_t len = le(4);
        if (len > 0x7fffffff) bad("negative BINSTRING length");
        push(make_str(Kind::Str, len));
        break;
      }
      case SHORT_BINBYTES:
        push(make_str(Kind::Bytes, le(1)));
        break;
      case BINBYTES:
        push(make_str(Kind::Bytes, le(4)));
        break;
      case BINBYTES8:
        push(make_str(Kind::Bytes, le(8)));
        break;
      case EMPTY_TUPLE:
        push(make(Kind::Tuple));
        break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        size_t k = op - TUPLE1 + 1;
        if (stack_.size() < fence() + k) bad("stack underflow");
        Value* t = make(Kind::Tuple);
        t->items.assign(stack_.end() - k, stack_.end());
        stack_.resize(stack_.size() - k);
        push(t);
        break;
      }
      case TUPLE: {
        Value* t = make(Kind::Tuple);
        t->items = pop_mark();
        grow(t->items.size());
        push(t);
        break;
      }
      case EMPTY_LIST:
        push(make(Kind::List));
        break;
      case LIST: {
        Value* l = make(Kind::List);
        l->items = pop_mark();
        grow(l->items.size());
        push(l);
        break;
      }
      case APPEND: {
        Value* item = pop();
        Value* list = top();
        if (list->kind != Kind::List) bad(concat("APPEND to a ", kind_name(list->kind)));
        grow(1);
        list->items.push_back(item);
        break;
      }
      case APPENDS: {
        std::vector<Value*> items = pop_mark();
        Value* list = top();
        if (list->kind != Kind::List) bad(concat("APPENDS to a ", kind_name(list->kind)));
        grow(items.size());
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case EMPTY_DICT:
        push(make(Kind::Dict));
        break;
      case DICT: {
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) bad("DICT with an odd number of items");
        Value* dct = make(Kind::Dict);
        grow(items.size());
        dct->items = std::move(items);
        push(dct);
        break;
      }
      case SETITEM: {
        Value* v = pop();
        Value* k = pop();
        Value* dct = top();
        if (dct->kind != Kind::Dict) bad(concat("SETITEM on a ", kind_name(dct->kind)));
        grow(2);
        dct->items.push_back(k);
        dct->items.push_back(v);
        break;
      }
      case SETITEMS: {
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) bad("SETITEMS with an odd number of items");
        Value* dct = top();
        if (dct->kind != Kind::Dict) bad(concat("SETITEMS on a ", kind_name(dct->kind)));
        grow(items.size());
        dct->items.insert(dct->items.end(), items.begin(), items.end());
        break;
      }
      case BINPUT:
        put_memo(le(1));
        break;
      case LONG_BINPUT:
        put_memo(le(4));
        break;
      case MEMOIZE:
        put_memo(memo_.size());
        break;
      case BINGET:
        push(get_memo(le(1)));
        break;
      case LONG_BINGET:
        push(get_memo(le(4)));
        break;
      case GLOBAL: {
        std::string module = line();
        std::string name = line();
        push(resolve(module, name));
        break;
      }
      case STACK_GLOBAL: {
        Value* name = pop();
        Value* module = pop();
        if (module->kind != Kind::Str || name->kind != Kind::Str) bad("STACK_GLOBAL operands are not strings");
        push(resolve(module->s, name->s));
        break;
      }
      case REDUCE: {
        Value* args = pop();
        Value*& fn = top();
        fn = call(fn, args);
        break;
      }
      case NEWOBJ:
      case NEWOBJ_EX: {
        if (op == NEWOBJ_EX) pop();  // kwargs
        Value* args = pop();
        Value* cls = pop();
        if (args->kind != Kind::Tuple) bad("NEWOBJ arguments are not a tuple");
        if (cls->kind != Kind::Global || cls->global != Global::OrderedDict)
          fail("refusing to construct ", cls->kind == Kind::Global ? cls->s : kind_name(cls->kind), " in ", ctx_,
               ": only OrderedDict may be created with NEWOBJ");
        push(make(Kind::Dict));  // OrderedDict.__new__ ignores its arguments; items follow
        break;
      }
      case BUILD: {
        pop();  // the state: for an OrderedDict its __dict__ (state_dict()'s _metadata), not tensors
        Value* inst = top();
        if (inst->kind != Kind::Dict) bad(concat("BUILD on a ", kind_name(inst->kind), " is not supported"));
        break;
      }
      case BINPERSID: {
        Value* pid = pop();
        push(persistent(pid));
        break;
      }
      default:
        fail("unsupported pickle opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15], " at byte ",
             op_pos_, " in ", ctx_, " (torch.save never writes it)");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writer: mirrors CPython's Pickler (protocol 2) on the objects torch.save pickles.

class Writer {
 public:
  std::string out;

  void op(uint8_t o) { out.push_back(char(o)); }
  void u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) out.push_back(char((v >> (8 * k)) & 0xff));
  }
  // Memoizes the object just written, as Pickler.memoize() does (BINPUT n / LONG_BINPUT n).
  uint32_t memoize() {
    uint32_t idx = next_++;
    if (idx < 256) {
      op(BINPUT);
      op(uint8_t(idx));
    } else {
      op(LONG_BINPUT);
      u32(idx);
    }
    return idx;
  }
  void get(uint32_t idx) {
    if (idx < 256) {
      op(BINGET);
      op(uint8_t(idx));
    } else {
      op(LONG_BINGET);
      u32(idx);
    }
  }
  // A new str object: BINUNICODE, then memoized.
  void str(const std::string& s) {
    op(BINUNICODE);
    u32(uint32_t(s.size()));
    out += s;
    memoize();
  }
  // A str object that is one Python object used repeatedly ('storage', 'cpu'): BINGET after the first.
  void shared_str(const std::string& s) {
    auto it = shared_.find("s:" + s);
    if (it != shared_.end()) return get(it->second);
    op(BINUNICODE);
    u32(uint32_t(s.size()));
    out += s;
    shared_["s:" + s] = memoize();
  }
  void global(const std::string& module, const std::string& name) {
    auto it = shared_.find("g:" + module + "." + name);
    if (it != shared_.end()) return get(it->second);
    op(GLOBAL);
    out += module + "\n" + name + "\n";
    shared_["g:" + module + "." + name] = memoize();
  }
  // save_long: BININT1/BININT2/BININT where they fit, else LONG1 with minimal two's complement.
  void integer(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      op(BININT1);
      op(uint8_t(v));
    } else if (v >= 0 && v <= 0xffff) {
      op(BININT2);
      op(uint8_t(v & 0xff));
      op(uint8_t(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op(BININT);
      u32(uint32_t(int32_t(v)));
    } else {
      uint64_t mag = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
      int bits = 64 - __builtin_clzll(mag);
      size_t nbytes = size_t(bits >> 3) + 1;
      uint8_t b[9];
      for (size_t k = 0; k < nbytes; ++k) b[k] = k < 8 ? uint8_t(uint64_t(v) >> (8 * k)) : (v < 0 ? 0xff : 0);
      if (v < 0 && nbytes > 1 && b[nbytes - 1] == 0xff && (b[nbytes - 2] & 0x80)) --nbytes;
      op(LONG1);
      op(uint8_t(nbytes));
      out.append(reinterpret_cast<const char*>(b), nbytes);
    }
  }
  // save_tuple: () is EMPTY_TUPLE and not memoized; 1-3 items use TUPLE1-3; longer ones MARK..TUPLE.
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(EMPTY_TUPLE);
    if (v.size() > 3) op(MARK);
    for (int64_t x : v) integer(x);
    op(v.size() > 3 ? uint8_t(TUPLE) : uint8_t(TUPLE1 + v.size() - 1));
    memoize();
  }

 private:
  uint32_t next_ = 0;
  std::unordered_map<std::string, uint32_t> shared_;
};

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

std::unique_ptr<Unpickled> unpickle(const uint8_t* data, size_t size, const std::string& context) {
  return Machine(data, size, context).run();
}

std::string pickle_state_dict(const std::vector<TensorSpec>& tensors) {
  Writer w;
  w.op(PROTO);
  w.op(2);
  w.global("collections", "OrderedDict");
  w.op(EMPTY_TUPLE);
  w.op(REDUCE);
  w.memoize();
  uint32_t ordered_dict = 0;  // memo index of the OrderedDict global, written first

  auto tensor = [&](size_t i) {
    const TensorSpec& t = tensors[i];
    bool v3 = t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2;
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    // Contiguous strides as torch computes them: a zero-size dim counts as 1.
    std::vector<int64_t> stride(t.shape.size());
    int64_t acc = 1;
    for (size_t k = t.shape.size(); k-- > 0;) {
      stride[k] = acc;
      acc *= std::max<int64_t>(t.shape[k], 1);
    }
    w.str(t.name);
    w.global("torch._utils", v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
    w.op(MARK);
    {  // persistent id
      w.op(MARK);
      w.shared_str("storage");
      if (v3)
        w.global("torch.storage", "UntypedStorage");  // as torch >= 2.2 writes it (torch 2.13 checked)
      else
        w.global("torch", typed_storage_name(t.dtype));
      w.str(std::to_string(i));
      w.shared_str("cpu");
      w.integer(v3 ? numel * int64_t(dtype_size(t.dtype)) : numel);
      w.op(TUPLE);
      w.memoize();
      w.op(BINPERSID);
    }
    w.integer(0);  // storage_offset
    w.int_tuple(t.shape);
    w.int_tuple(stride);
    w.op(NEWFALSE);  // requires_grad
    w.get(ordered_dict);  // backward_hooks: OrderedDict()
    w.op(EMPTY_TUPLE);
    w.op(REDUCE);
    w.memoize();
    if (v3) w.global("torch", torch_dtype_name(t.dtype));
    w.op(TUPLE);
    w.memoize();
    w.op(REDUCE);
    w.memoize();
  };

  // Pickler._batch_setitems: batches of 1000 as MARK ... SETITEMS; a batch of one is SETITEM.
  constexpr size_t kBatch = 1000;
  size_t i = 0;
  while (i < tensors.size()) {
    size_t n = std::min(kBatch, tensors.size() - i);
    if (n == 1) {
      tensor(i++);
      w.op(SETITEM);
    } else {
      w.op(MARK);
      for (size_t k = 0; k < n; ++k) tensor(i++);
      w.op(SETITEMS);
    }
  }
  w.op(STOP);
  return std::move(w.out);
}

}  // namespace wan::pickle

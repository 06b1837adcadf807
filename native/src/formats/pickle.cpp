// The restricted unpickler's opcode loop (the machine's state lives in pickle_machine.h; the
// torch globals and calls in pickle_torch.cpp), and kind_name.
#include "formats/pickle.h"

#include "formats/pickle_machine.h"
#include "formats/pickle_opcodes.h"

namespace wan::pickle {

using namespace opcode;

Value* Machine::read_long(uint8_t op) {
  // LONG1 / LONG4: a little-endian two's complement integer of 1- or 4-byte-counted length.
  uint64_t len = op == LONG1 ? le(1) : le(4);
  if (op == LONG4 && len > 0x7fffffff) bad("negative LONG4 length");
  if (len > 8) bad(concat("integer of ", len, " bytes does not fit 64 bits"));
  const uint8_t* p = take(len);
  uint64_t v = 0;
  for (size_t k = len; k-- > 0;) v = v << 8 | p[k];
  if (len > 0 && len < 8 && (p[len - 1] & 0x80)) v |= ~uint64_t(0) << (8 * len);  // sign-extend
  return make_int(int64_t(v));
}

Value* Machine::read_string(uint8_t op) {
  // The SHORT_ forms count their length in 1 byte, the 8 forms in 8, the rest in 4. Python 2's
  // str (BINSTRING, SHORT_BINSTRING) is read as text, as torch.load(encoding='utf-8') does.
  bool bytes = op == SHORT_BINBYTES || op == BINBYTES || op == BINBYTES8;
  int width = op == SHORT_BINUNICODE || op == SHORT_BINSTRING || op == SHORT_BINBYTES ? 1
              : op == BINUNICODE8 || op == BINBYTES8                                ? 8
                                                                                    : 4;
  uint64_t len = le(width);
  if (op == BINSTRING && len > 0x7fffffff) bad("negative BINSTRING length");
  return make_str(bytes ? Kind::Bytes : Kind::Str, len);
}

Value* Machine::collect(Kind k) {
  Value* v = make(k);
  v->items = pop_mark();
  grow(v->items.size());
  return v;
}

void Machine::extend(Value* into, Kind k, const std::vector<Value*>& items, const char* op) {
  if (into->kind != k) bad(concat(op, " a ", kind_name(into->kind)));
  grow(items.size());
  into->items.insert(into->items.end(), items.begin(), items.end());
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
      case BININT2:
        push(make_int(int64_t(le(op == BININT1 ? 1 : 2))));
        break;
      case LONG1:
      case LONG4:
        push(read_long(op));
        break;
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
      case BINUNICODE:
      case BINUNICODE8:
      case SHORT_BINSTRING:
      case BINSTRING:
      case SHORT_BINBYTES:
      case BINBYTES:
      case BINBYTES8:
        push(read_string(op));
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
      case TUPLE:
        push(collect(Kind::Tuple));
        break;
      case EMPTY_LIST:
        push(make(Kind::List));
        break;
      case LIST:
        push(collect(Kind::List));
        break;
      case APPEND: {
        Value* item = pop();
        extend(top(), Kind::List, {item}, "APPEND to");
        break;
      }
      case APPENDS: {
        std::vector<Value*> items = pop_mark();
        extend(top(), Kind::List, items, "APPENDS to");
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
        extend(top(), Kind::Dict, {k, v}, "SETITEM on");
        break;
      }
      case SETITEMS: {
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) bad("SETITEMS with an odd number of items");
        extend(top(), Kind::Dict, items, "SETITEMS on");
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

}  // namespace wan::pickle

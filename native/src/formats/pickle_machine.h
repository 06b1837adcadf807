// The restricted unpickler's stack machine (see pickle.h for what it allows and why).
// pickle.cpp runs the opcodes; pickle_torch.cpp resolves GLOBALs against the allowlist and
// performs the few calls (REDUCE) a state dict makes. Internal to formats/pickle*.cpp.
#pragma once
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/strings.h"
#include "formats/pickle.h"

namespace wan::pickle {

// Limits far above any real state dict (a 100k-tensor checkpoint needs ~3M values) that keep a
// hostile pickle from exhausting memory: values, stack slots, memo slots and container items
// can each be had for a byte or two of input (DUP, BINGET, APPEND), so each is capped.
constexpr size_t kMaxValues = size_t(1) << 23;
constexpr size_t kMaxItems = size_t(1) << 25;
constexpr size_t kMaxMarks = 1 << 16;
constexpr size_t kMaxDims = 64;
constexpr size_t kMaxGlobalLine = 256;

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& context)
      : d_(data), n_(size), ctx_(context), out_(std::make_unique<Unpickled>()) {}

  // Runs the opcodes to STOP and hands over the values, root set.
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

  // Opcode groups of the run loop (pickle.cpp).
  Value* read_long(uint8_t op);                    // LONG1 / LONG4
  Value* read_string(uint8_t op);                  // the str and bytes opcodes
  Value* collect(Kind k);                          // TUPLE / LIST: the items above the MARK
  void extend(Value* into, Kind k, const std::vector<Value*>& items, const char* op);  // APPEND(S), SETITEM(S)

  // The torch side (pickle_torch.cpp).
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

}  // namespace wan::pickle

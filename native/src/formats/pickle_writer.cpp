// pickle_state_dict: the data.pkl torch.save writes for a state dict, byte for byte. The
// Writer mirrors CPython's Pickler (protocol 2) on the objects torch.save pickles.
#include <algorithm>
#include <unordered_map>

#include "common/error.h"
#include "formats/pickle.h"
#include "formats/pickle_opcodes.h"
#include "formats/pickle_torch.h"

namespace wan::pickle {

using namespace opcode;

namespace {

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
    indexed(BINPUT, LONG_BINPUT, idx);
    return idx;
  }
  void get(uint32_t idx) { indexed(BINGET, LONG_BINGET, idx); }
  // A new str object: BINUNICODE, then memoized.
  void str(const std::string& s) {
    unicode(s);
    memoize();
  }
  // A str object that is one Python object used repeatedly ('storage', 'cpu'): BINGET after the first.
  void shared_str(const std::string& s) {
    if (reuse("s:" + s)) return;
    unicode(s);
    shared_["s:" + s] = memoize();
  }
  // A GLOBAL, written once and fetched from the memo after that, as Pickler does.
  void global(const std::string& module, const std::string& name) {
    if (reuse("g:" + module + "." + name)) return;
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
  // A memo opcode with a one-byte index where it fits, else the four-byte form.
  void indexed(uint8_t short_op, uint8_t long_op, uint32_t idx) {
    if (idx < 256) {
      op(short_op);
      op(uint8_t(idx));
    } else {
      op(long_op);
      u32(idx);
    }
  }
  // BINGET of the object memoized under `key` (shared_str, global); false when there is none yet.
  bool reuse(const std::string& key) {
    auto it = shared_.find(key);
    if (it == shared_.end()) return false;
    get(it->second);
    return true;
  }
  void unicode(const std::string& s) {
    op(BINUNICODE);
    u32(uint32_t(s.size()));
    out += s;
  }

  uint32_t next_ = 0;
  std::unordered_map<std::string, uint32_t> shared_;
};

}  // namespace

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

// .pth (torch.save zip) loading and saving: round trips, mmap aliasing, storage sharing, the
// restricted unpickler against hostile pickles, zip corner cases (compressed, truncated, ZIP64),
// and, when WANLAB_PYTHON names a python with torch, interop both ways with real PyTorch.
#include "formats/pth.h"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/pickle.h"
#include "formats/zip.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "test.h"

using namespace wan;
namespace fs = std::filesystem;

namespace {

using wantest::scratch;
using wantest::write_bytes;

std::string read_bytes(const std::string& path) { return read_text_file(path); }


using wantest::same;

// One tensor of every dtype, with values that exercise sign, range and fractional bits.
TensorMap all_dtypes() {
  at::Tensor f = at::arange(12, at::kDouble).mul(0.37).sin().mul(100).reshape({3, 4});
  TensorMap m;
  m["t_bf16"] = {f.to(at::kBFloat16), DType::BF16};
  m["t_f16"] = {f.to(at::kHalf).t(), DType::F16};  // non-contiguous on purpose
  m["t_f32"] = {f.to(at::kFloat).reshape({2, 3, 2}), DType::F32};
  m["t_f64"] = {f.reshape({12}), DType::F64};
  m["t_f8_e4m3"] = {at::arange(256, at::kLong).to(at::kByte).reshape({16, 16}), DType::F8_E4M3};
  m["t_f8_e5m2"] = {at::arange(7, at::kLong).mul(37).to(at::kByte), DType::F8_E5M2};
  m["t_i64"] = {at::arange(-3, 3, at::kLong).mul(int64_t(1) << 40), DType::I64};
  m["t_i32"] = {at::arange(-5, 5, at::kLong).mul(123456789).to(at::kInt), DType::I32};
  m["t_i16"] = {at::arange(-4, 4, at::kLong).mul(8000).to(at::kShort), DType::I16};
  m["t_i8"] = {at::arange(-128, 128, 51, at::kLong).to(at::kChar), DType::I8};
  m["t_u8"] = {at::arange(0, 256, 17, at::kLong).to(at::kByte), DType::U8};
  m["t_bool"] = {f.gt(0), DType::BOOL};
  return m;
}

// Whether p lies in a mapping of the file `path` (per /proc/self/maps).
bool in_file_mapping(const void* p, const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line, canon = fs::canonical(path).string();
  while (std::getline(maps, line)) {
    std::istringstream is(line);
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::string perms, off, dev, inode, name;
    is >> std::hex >> lo >> dash >> hi >> perms >> off >> dev >> inode;
    std::getline(is >> std::ws, name);
    auto q = reinterpret_cast<uintptr_t>(p);
    if (q >= lo && q < hi) return name == canon;
  }
  return false;
}

// Pickle bytes by hand, for shapes torch would never write (and hostile ones).
struct Pk {
  std::string b;
  Pk& op(uint8_t c) {
    b.push_back(char(c));
    return *this;
  }
  Pk& u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) b.push_back(char((v >> (8 * k)) & 0xff));
    return *this;
  }
  Pk& str(const std::string& s) {  // BINUNICODE
    op('X').u32(uint32_t(s.size()));
    b += s;
    return *this;
  }
  Pk& sstr(const std::string& s) {  // SHORT_BINUNICODE (protocol 4)
    op(0x8c).op(uint8_t(s.size()));
    b += s;
    return *this;
  }
  Pk& global(const std::string& module, const std::string& name, bool stack = false) {
    if (stack) return sstr(module).op(0x94).sstr(name).op(0x94).op(0x93).op(0x94);  // STACK_GLOBAL, MEMOIZE
    b += "c" + module + "\n" + name + "\n";
    return *this;
  }
  Pk& i(int64_t v) {  // BININT
    return op('J').u32(uint32_t(int32_t(v)));
  }
  Pk& ints(const std::vector<int64_t>& v) {  // MARK ints TUPLE
    op('(');
    for (int64_t x : v) i(x);
    return op('t');
  }
  Pk& empty_ordered_dict(bool stack = false) { return global("collections", "OrderedDict", stack).op(')').op('R'); }
  // _rebuild_tensor_v2(pid(key, storage, numel), offset, size, stride, False, OrderedDict())
  Pk& tensor(const std::string& key, const std::string& storage, int64_t numel, int64_t offset,
             const std::vector<int64_t>& size, const std::vector<int64_t>& stride, bool stack = false) {
    global("torch._utils", "_rebuild_tensor_v2", stack).op('(');
    op('(').str("storage").global("torch", storage, stack).str(key).str("cpu").i(numel).op('t').op('Q');
    i(offset).ints(size).ints(stride).op(0x89);
    empty_ordered_dict(stack).op('t').op('R');
    return *this;
  }
};

// A zip laid out like torch.save's: ARCHIVE/data.pkl, the storages, ARCHIVE/version.
std::string write_archive(const std::string& name, const std::string& pkl,
                          const std::vector<std::pair<std::string, std::string>>& storages = {},
                          bool force_zip64 = false) {
  std::string path = scratch(name);
  ZipWriter w(path, force_zip64);
  w.add("archive/data.pkl", pkl);
  for (const auto& [key, bytes] : storages) w.add("archive/data/" + key, bytes);
  w.add("archive/version", std::string("3\n"));
  w.finish();
  return path;
}

// What save_pth would put in an archive for `in`: the data.pkl and the storage records by key.
struct Archive {
  std::string pkl;
  std::vector<std::pair<std::string, std::string>> storages;
};
Archive archive_parts(const TensorMap& in) {
  std::vector<pickle::TensorSpec> specs;
  Archive a;
  for (const auto& [name, t] : in) {
    specs.push_back({name, t.dtype, t.data.sizes().vec()});
    at::Tensor c = t.data.contiguous();
    a.storages.emplace_back(std::to_string(a.storages.size()),
                            std::string(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * c.element_size()));
  }
  a.pkl = pickle::pickle_state_dict(specs);
  return a;
}

std::string floats(int n) {
  std::string s(size_t(n) * 4, '\0');
  for (int k = 0; k < n; ++k) {
    float v = float(k);
    std::memcpy(&s[size_t(k) * 4], &v, 4);
  }
  return s;
}

// Rewrites the compression method of zip entry `name` (central and local header) in place.
void set_method(const std::string& path, const std::string& name, uint16_t method) {
  std::string f = read_bytes(path);
  bool found = false;
  for (size_t p = 0; p + 46 <= f.size(); ++p) {
    if (f.compare(p, 4, "PK\x01\x02") != 0) continue;
    uint16_t nlen = uint16_t(uint8_t(f[p + 28]) | uint8_t(f[p + 29]) << 8);
    if (f.compare(p + 46, nlen, name) != 0 || nlen != name.size()) continue;
    uint32_t local = 0;
    std::memcpy(&local, &f[p + 42], 4);
    std::memcpy(&f[p + 10], &method, 2);
    std::memcpy(&f[local + 8], &method, 2);
    found = true;
  }
  if (!found) throw wantest::Failure{"no zip entry " + name + " in " + path};
  write_bytes(path, f);
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

int run(const std::string& cmd) {
  std::cout.flush();  // keep our output ordered with the child's
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST(pth_crc32_known_values) {
  EXPECT(crc32("123456789", 9) == 0xcbf43926u);
  EXPECT(crc32("", 0) == 0);
  // Running checksums compose, whatever the split.
  std::string s(1000, 'x');
  for (size_t k = 0; k < s.size(); ++k) s[k] = char(k * 7);
  uint32_t whole = crc32(s.data(), s.size());
  for (size_t cut : {size_t(0), size_t(1), size_t(7), size_t(500), size_t(999)})
    EXPECT(crc32(s.data() + cut, s.size() - cut, crc32(s.data(), cut)) == whole);
}

TEST(pth_round_trip_all_dtypes) {
  TensorMap in = all_dtypes();
  std::string p = scratch("dtypes.pth");
  save_pth(p, in);
  EXPECT(!fs::exists(p + ".tmp"));
  for (bool mmap : {true, false}) {
    TensorMap out = load_pth(p, mmap);
    EXPECT(out.size() == in.size());
    for (const auto& [name, t] : in) {
      EXPECT(out.count(name));
      EXPECT(same(out[name], t));
    }
  }
}

TEST(pth_round_trip_scalars_zero_size_and_views) {
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  TensorMap in;
  in["scalar"] = {at::scalar_tensor(3.5, at::kFloat), DType::F32};
  in["scalar_i64"] = {at::scalar_tensor(int64_t(1) << 50, at::kLong), DType::I64};
  in["empty_0x3"] = {at::zeros({0, 3}, at::kBFloat16), DType::BF16};
  in["empty_3x0"] = {at::zeros({3, 0}, at::kFloat), DType::F32};
  in["strided"] = {base.slice(1, 1, 6, 2), DType::F32};  // stride (6, 2), offset 1
  in["transposed"] = {base.t(), DType::F32};
  in["five_d"] = {at::arange(32, at::kLong).to(at::kShort).reshape({2, 1, 2, 2, 4}), DType::I16};
  std::string p = scratch("odd.pth");
  save_pth(p, in);
  TensorMap out = load_pth(p);
  EXPECT(out.size() == in.size());
  for (const auto& [name, t] : in) EXPECT(same(out[name], t));
  EXPECT(out["scalar"].data.dim() == 0 && out["scalar"].data.item<float>() == 3.5f);
  EXPECT(out["strided"].data.is_contiguous());  // views are written compactly
  EXPECT(out["empty_0x3"].data.sizes() == at::IntArrayRef({0, 3}));

  // An empty state dict is a valid file too.
  save_pth(scratch("none.pth"), {});
  EXPECT(load_pth(scratch("none.pth")).empty());
}

TEST(pth_layout_matches_torch_save) {
  TensorMap in = all_dtypes();
  std::string p = scratch("layout.pth");
  save_pth(p, in);
  ZipReader z(MappedFile::open(p));
  std::vector<std::string> want = {"archive/data.pkl", "archive/byteorder"};
  for (size_t i = 0; i < in.size(); ++i) want.push_back("archive/data/" + std::to_string(i));
  want.push_back("archive/version");
  EXPECT(z.entries().size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const ZipEntry& e = z.entries()[i];
    EXPECT(e.name == want[i]);
    EXPECT(e.method == 0);
    EXPECT(e.data_offset % 64 == 0);  // torch's 64-byte record alignment
    z.verify_crc(e);
  }
  const ZipEntry* v = z.find("archive/version");
  EXPECT(std::string(reinterpret_cast<const char*>(z.data(*v)), v->size) == "3\n");
  const ZipEntry* bo = z.find("archive/byteorder");
  EXPECT(std::string(reinterpret_cast<const char*>(z.data(*bo)), bo->size) == "little");

  // The pickle is protocol 2 with the globals torch writes, and round-trips through our reader.
  const ZipEntry* pk = z.find("archive/data.pkl");
  std::string pkl(reinterpret_cast<const char*>(z.data(*pk)), pk->size);
  EXPECT(pkl.compare(0, 2, "\x80\x02") == 0);
  EXPECT(pkl.find("ccollections\nOrderedDict\n") != std::string::npos);
  EXPECT(pkl.find("ctorch._utils\n_rebuild_tensor_v2\n") != std::string::npos);
  EXPECT(pkl.find("ctorch\nBFloat16Storage\n") != std::string::npos);
  // float8: what torch >= 2.2 writes (UntypedStorage + _rebuild_tensor_v3 + dtype).
  EXPECT(pkl.find("ctorch._utils\n_rebuild_tensor_v3\n") != std::string::npos);
  EXPECT(pkl.find("ctorch.storage\nUntypedStorage\n") != std::string::npos);
  EXPECT(pkl.find("ctorch\nfloat8_e4m3fn\n") != std::string::npos);
}

TEST(pth_pickle_writer_large_values) {
  // Sizes past 2^31 need LONG1; more than 255 memo slots need LONG_BINPUT/LONG_BINGET; more than
  // 1000 items need several SETITEMS batches. Check the writer against our own reader.
  std::vector<pickle::TensorSpec> specs;
  for (int k = 0; k < 1001; ++k) specs.push_back({"w" + std::to_string(k), DType::U8, {k % 3}});
  specs.push_back({"huge", DType::BF16, {(int64_t(1) << 31) + 5, 3}});
  std::string pkl = pickle::pickle_state_dict(specs);
  auto up = pickle::unpickle(reinterpret_cast<const uint8_t*>(pkl.data()), pkl.size(), "test");
  EXPECT(up->root->kind == pickle::Kind::Dict);
  EXPECT(up->root->items.size() == 2 * specs.size());
  const pickle::Value* huge = up->root->items.back();
  EXPECT(huge->kind == pickle::Kind::Tensor);
  EXPECT(huge->tensor->size == std::vector<int64_t>({(int64_t(1) << 31) + 5, 3}));
  EXPECT(huge->tensor->stride == std::vector<int64_t>({3, 1}));
  EXPECT(huge->tensor->storage->storage->numel == ((int64_t(1) << 31) + 5) * 3);
  EXPECT(huge->tensor->storage->storage->key == "1001");
}

TEST(pth_mmap_aliases_the_file) {
  TensorMap in = all_dtypes();
  std::string p = scratch("alias.pth");
  save_pth(p, in);
  TensorMap mapped = load_pth(p, true);
  for (const auto& [name, t] : mapped) EXPECT(in_file_mapping(t.data.data_ptr(), p));
  TensorMap copied = load_pth(p, false);
  for (const auto& [name, t] : copied) EXPECT(!in_file_mapping(t.data.data_ptr(), p));
  // The mapping outlives the call: the tensors still read correctly after others are gone.
  at::Tensor keep = mapped["t_f32"].data;
  mapped.clear();
  EXPECT(same({keep, DType::F32}, in["t_f32"]));
}

TEST(pth_shared_storage_and_strided_views) {
  // One 12-float storage viewed four ways, in protocol-2 and protocol-4 spellings (STACK_GLOBAL,
  // SHORT_BINUNICODE, MEMOIZE, FRAME), with a Parameter inside a nested dict and non-tensor leaves.
  for (bool p4 : {false, true}) {
    Pk body;
    body.empty_ordered_dict(p4).op('(');
    body.str("base").tensor("0", "FloatStorage", 12, 0, {3, 4}, {4, 1}, p4);
    body.str("view").tensor("0", "FloatStorage", 12, 5, {2, 2}, {4, 2}, p4);
    body.str("tpose").tensor("0", "FloatStorage", 12, 0, {4, 3}, {1, 4}, p4);
    body.str("sub").op('}').str("param");
    body.global("torch._utils", "_rebuild_parameter", p4).op('(');
    body.tensor("0", "FloatStorage", 12, 11, {1}, {1}, p4).op(0x88);
    body.empty_ordered_dict(p4).op('t').op('R').op('s');
    body.str("epoch").op('K').op(5);
    body.str("note").op(']').op('N').op('a');
    body.op('u').op('.');
    Pk pk;
    pk.op(0x80).op(p4 ? 4 : 2);
    if (p4) {
      pk.op(0x95);
      for (int k = 0; k < 8; ++k) pk.op(uint8_t(k == 0 ? body.b.size() & 0xff : k == 1 ? body.b.size() >> 8 : 0));
    }
    pk.b += body.b;
    std::string p = write_archive(p4 ? "shared4.pth" : "shared2.pth", pk.b, {{"0", floats(12)}});
    for (bool mmap : {true, false}) {
      TensorMap m = load_pth(p, mmap);
      EXPECT(m.size() == 4);  // base, view, tpose, sub.param; epoch and note are not tensors
      at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
      EXPECT(at::equal(m["base"].data, base));
      EXPECT(at::equal(m["view"].data, base.flatten().as_strided({2, 2}, {4, 2}, 5)));
      EXPECT(at::equal(m["tpose"].data, base.t()));
      EXPECT(m["sub.param"].data.item<float>() == 11.0f);
      EXPECT(m["view"].data.is_alias_of(m["base"].data));
      EXPECT(m["tpose"].data.is_alias_of(m["base"].data));
      EXPECT(m["sub.param"].data.is_alias_of(m["base"].data));
      EXPECT(m["view"].data.data_ptr<float>() == m["base"].data.data_ptr<float>() + 5);
    }
  }
}

TEST(pth_refuses_posix_system) {
  std::string pwned = scratch("pwned");
  Pk pk;
  pk.op(0x80).op(2).global("posix", "system").str("touch " + pwned).op(0x85).op('R').op('.');
  std::string p = write_archive("evil_system.pth", pk.b);
  EXPECT_ERROR(load_pth(p), "refusing global posix.system", p);
  EXPECT(!fs::exists(pwned));

  // Buried inside an otherwise valid state dict, it is refused just the same.
  Pk pk2;
  pk2.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "FloatStorage", 2, 0, {2}, {1});
  pk2.str("x").global("os", "system").str("touch " + pwned).op(0x85).op('R').op('u').op('.');
  std::string p2 = write_archive("evil_nested.pth", pk2.b, {{"0", floats(2)}});
  EXPECT_ERROR(load_pth(p2), "refusing global os.system", p2);
  EXPECT(!fs::exists(pwned));
}

TEST(pth_refuses_builtins_eval_via_stack_global) {
  std::string pwned = scratch("pwned2");
  Pk pk;
  pk.op(0x80).op(4).global("builtins", "eval", true);
  pk.sstr("__import__('os').system('touch " + pwned + "')").op(0x85).op('R').op('.');
  std::string p = write_archive("evil_eval.pth", pk.b);
  EXPECT_ERROR(load_pth(p), "refusing global builtins.eval", p);
  EXPECT(!fs::exists(pwned));
  // Allowlisted names cannot be abused either: calling a storage class, constructing via NEWOBJ.
  Pk call;
  call.op(0x80).op(2).global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_ERROR(load_pth(write_archive("evil_call.pth", call.b)), "refusing to call torch.FloatStorage");
  Pk newobj;
  newobj.op(0x80).op(2).global("torch._utils", "_rebuild_tensor_v2").op(')').op(0x81).op('.');
  EXPECT_ERROR(load_pth(write_archive("evil_newobj.pth", newobj.b)), "refusing to construct");
}

TEST(pth_malformed_pickles_are_errors) {
  Pk good;
  good.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "FloatStorage", 2, 0, {2}, {1}).op('u').op('.');
  auto load = [&](const std::string& name, const std::string& pkl) {
    return load_pth(write_archive(name, pkl, {{"0", floats(2)}}));
  };
  EXPECT(load("good.pth", good.b).size() == 1);
  // Every prefix of a valid pickle is a clean error, never a crash or a hang.
  for (size_t cut = 0; cut < good.b.size(); ++cut)
    EXPECT_ERROR(load("cut.pth", good.b.substr(0, cut)), "cut.pth");
  EXPECT_ERROR(load("under.pth", "\x80\x02t."), "no MARK");
  EXPECT_ERROR(load("under2.pth", "\x80\x02" "a."), "stack underflow");
  EXPECT_ERROR(load("memo.pth", "\x80\x02h\x07."), "memo index 7");
  EXPECT_ERROR(load("opcode.pth", "\x80\x02\xff."), "unsupported pickle opcode 0xff");
  EXPECT_ERROR(load("proto.pth", "\x80\x09}."), "protocol 9");
  EXPECT_ERROR(load("len.pth", std::string("\x80\x02X\xff\xff\xff\x7f", 7)), "truncated pickle");
  EXPECT_ERROR(load("list.pth", "\x80\x02]."), "not a dict of tensors");
  // A dict that contains itself: bounded, not infinite recursion.
  Pk cycle;
  cycle.op(0x80).op(2).op('}').op('q').op(0).str("loop").op('h').op(0).op('s').op('.');
  EXPECT_ERROR(load("cycle.pth", cycle.b), "nested deeper");
  // Unsupported tensor kinds and storage types are named as such.
  Pk sparse;
  sparse.op(0x80).op(2).global("torch._utils", "_rebuild_sparse_tensor").op('.');
  EXPECT_ERROR(load("sparse.pth", sparse.b), "unsupported tensor kind torch._utils._rebuild_sparse_tensor");
  Pk cplx;
  cplx.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "ComplexFloatStorage", 1, 0, {1}, {1}).op('u').op('.');
  EXPECT_ERROR(load("complex.pth", cplx.b), "unsupported storage type torch.ComplexFloatStorage");
}

TEST(pth_mutated_pickles_never_crash) {
  // Random byte edits of a real data.pkl (and of a whole file) load or fail with wan::Error:
  // never a crash, a hang, or another exception type escaping.
  TensorMap in = all_dtypes();
  const Archive parts = archive_parts(in);
  uint64_t seed = 12345;
  auto rnd = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  auto mutate = [&rnd](std::string m) {  // one to four random bytes overwritten
    for (uint64_t k = 0, edits = 1 + rnd(4); k < edits; ++k) m[rnd(m.size())] = char(rnd(256));
    return m;
  };
  int loaded = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string m = mutate(parts.pkl);
    try {
      load_pth(write_archive("mutant.pth", m, parts.storages));
      ++loaded;
    } catch (const wan::Error&) {
    }
  }
  std::string whole = scratch("whole_mutant.pth");
  save_pth(whole, in);
  const std::string bytes = read_bytes(whole);
  for (int iter = 0; iter < 300; ++iter) {
    write_bytes(whole, mutate(bytes));
    try {
      for (const auto& [name, t] : load_pth(whole, iter % 2 == 0)) (void)t.data.sum();
      ++loaded;
    } catch (const wan::Error&) {
    }
  }
  EXPECT(loaded > 0);  // some edits (inside tensor bytes or names) are harmless
}

TEST(pth_storage_too_small_names_the_tensor) {
  Pk pk;  // declares 12 floats, the record holds 10
  pk.op(0x80).op(2).empty_ordered_dict().op('(').str("blocks.0.weight").tensor("0", "FloatStorage", 12, 0, {12}, {1});
  pk.op('u').op('.');
  std::string p = write_archive("small.pth", pk.b, {{"0", floats(10)}});
  EXPECT_ERROR(load_pth(p), "tensor blocks.0.weight", p, "archive/data/0");

  Pk over;  // the view reaches element 4 of a 4-element storage
  over.op(0x80).op(2).empty_ordered_dict().op('(').str("over").tensor("0", "FloatStorage", 4, 1, {2, 2}, {2, 1});
  over.op('u').op('.');
  std::string p2 = write_archive("over.pth", over.b, {{"0", floats(4)}});
  EXPECT_ERROR(load_pth(p2), "tensor over", "reach past");

  Pk huge;  // sizes whose product overflows 64 bits
  huge.op(0x80).op(2).empty_ordered_dict().op('(').str("huge");
  huge.tensor("0", "FloatStorage", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1}).op('u').op('.');
  EXPECT_ERROR(load_pth(write_archive("huge.pth", huge.b, {{"0", floats(4)}})), "tensor huge");

  Pk missing;
  missing.op(0x80).op(2).empty_ordered_dict().op('(').str("gone").tensor("7", "FloatStorage", 1, 0, {1}, {1});
  missing.op('u').op('.');
  EXPECT_ERROR(load_pth(write_archive("missing.pth", missing.b)), "tensor gone", "archive/data/7", "missing");
}

TEST(pth_rejects_compressed_entries) {
  TensorMap in;
  in["w"] = {at::ones({4}, at::kFloat), DType::F32};
  std::string p = scratch("deflated.pth");
  save_pth(p, in);
  set_method(p, "archive/data/0", 8);
  EXPECT_ERROR(load_pth(p), "archive/data/0", "compressed", p);
  std::string p2 = scratch("deflated_pkl.pth");
  save_pth(p2, in);
  set_method(p2, "archive/data.pkl", 8);
  EXPECT_ERROR(load_pth(p2), "archive/data.pkl", "compressed", p2);
}

TEST(pth_rejects_truncated_legacy_and_foreign_files) {
  TensorMap in = all_dtypes();
  std::string p = scratch("whole.pth");
  save_pth(p, in);
  std::string bytes = read_bytes(p);
  std::string half = scratch("half.pth");
  write_bytes(half, bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR(load_pth(half), half);
  // Cut anywhere in the central directory or end records: still a clean error.
  ZipReader z(MappedFile::open(p));
  for (size_t cut = z.entries().back().data_offset + 3; cut < bytes.size(); cut += 7) {
    write_bytes(half, bytes.substr(0, cut));
    EXPECT_ERROR(load_pth(half), half);
  }

  // Legacy format: pickle of the magic number 0x1950a86a20f9469cfc6c, then more pickles.
  std::string legacy = scratch("legacy.pth");
  write_bytes(legacy, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03."));
  EXPECT_ERROR(load_pth(legacy), "legacy (non-zip) torch.save format is not supported: " + legacy,
               "re-save it with torch.save in PyTorch >= 1.6");

  std::string text = scratch("notes.pth");
  write_bytes(text, "just some text\n");
  EXPECT_ERROR(load_pth(text), text, "not a PyTorch checkpoint");
  EXPECT_ERROR(load_pth(scratch("absent.pth")), scratch("absent.pth"));

  // A zip that is not a torch archive.
  std::string other = scratch("other.zip");
  {
    ZipWriter w(other);
    w.add("readme.txt", std::string("hi"));
    w.finish();
  }
  EXPECT_ERROR(load_pth(other), other, "not inside an archive directory");
}

TEST(pth_forced_zip64_archive_loads) {
  TensorMap in = all_dtypes();
  const Archive parts = archive_parts(in);
  std::string p = write_archive("zip64.pth", parts.pkl, parts.storages, true);
  ZipReader z(MappedFile::open(p));
  for (const ZipEntry& e : z.entries()) {
    EXPECT(e.data_offset % 64 == 0);
    z.verify_crc(e);
  }
  TensorMap out = load_pth(p);
  EXPECT(out.size() == in.size());
  for (const auto& [name, t] : in) EXPECT(same(out[name], t));
}

// Opt-in (WANLAB_PTH_BIG=1; writes a 4.1 GiB file): real ZIP64 sizes and offsets past 4 GiB.
TEST(pth_zip64_past_4gib) {
  const char* big = std::getenv("WANLAB_PTH_BIG");
  if (big == nullptr || std::string(big) != "1") {
    std::cout << "     pth_zip64_past_4gib: skipped (set WANLAB_PTH_BIG=1 to write a 4.1 GiB zip)\n";
    return;
  }
  std::string p = scratch("big.zip");
  const uint64_t size = (uint64_t(4) << 30) + 100;
  {
    ZipWriter w(p);
    w.add("archive/small", std::string("abc"));
    w.begin_entry("archive/big", size);
    std::vector<uint8_t> chunk(64 << 20, 0);
    for (uint64_t off = 0; off < size; off += chunk.size()) {
      uint64_t n = std::min<uint64_t>(chunk.size(), size - off);
      chunk[0] = uint8_t(off >> 26);
      w.write(chunk.data(), n);
    }
    w.end_entry();
    w.add("archive/after", std::string("xyz"));  // local header offset past 4 GiB
    w.finish();
  }
  {
    ZipReader z(MappedFile::open(p));
    const ZipEntry* b = z.find("archive/big");
    const ZipEntry* a = z.find("archive/after");
    EXPECT(b && a && b->size == size && a->header_offset > (uint64_t(1) << 32));
    EXPECT(b->data_offset % 64 == 0 && a->data_offset % 64 == 0);
    EXPECT(z.data(*b)[uint64_t(64) << 20] == 1);
    EXPECT(std::string(reinterpret_cast<const char*>(z.data(*a)), 3) == "xyz");
    z.verify_crc(*a);
    z.verify_crc(*b);
  }
  if (const char* py = std::getenv("WANLAB_PYTHON")) {
    std::string check = std::string(py) + " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); " +
                        "assert z.getinfo('archive/big').file_size==" + std::to_string(size) +
                        "; assert z.read('archive/after')==b'xyz'; assert z.read('archive/small')==b'abc'\" " + quote(p);
    EXPECT(run(check) == 0);
  }
  fs::remove(p);
}

TEST(pth_save_errors_keep_the_old_file) {
  std::string p = scratch("keep.pth");
  TensorMap good;
  good["w"] = {at::ones({2}, at::kFloat), DType::F32};
  save_pth(p, good);
  TensorMap bad;
  bad["w"] = {at::ones({2}, at::kFloat), DType::BF16};  // declared bf16, holds f32
  EXPECT_ERROR(save_pth(p, bad), "tensor w", p);
  EXPECT(!fs::exists(p + ".tmp"));
  EXPECT(load_pth(p).count("w"));
  EXPECT_ERROR(save_pth(scratch("no/such/dir/x.pth"), good), "no/such/dir/x.pth.tmp");
}

// Interop with real PyTorch, through test/python/pth_interop.py. Needs WANLAB_PYTHON (a python
// with torch, e.g. Debian's /usr/bin/python3 with python3-torch); skipped when unset.
TEST(pth_python_interop) {
  const char* py = std::getenv("WANLAB_PYTHON");
  if (py == nullptr || *py == '\0') {
    std::cout << "     pth_python_interop: skipped (set WANLAB_PYTHON to a python with torch)\n";
    return;
  }
  std::string script = (fs::path(__FILE__).parent_path().parent_path().parent_path() / "test/python/pth_interop.py").string();
  EXPECT(fs::exists(script));
  auto expected = [](const nlohmann::json& w, const StoredTensor& t) {
    if (w["dtype"].get<std::string>() != dtype_name(t.dtype)) return false;
    if (w["shape"].get<std::vector<int64_t>>() != t.data.sizes().vec()) return false;
    at::Tensor v = (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? to_float32(t) : t.data)
                       .to(at::kDouble).contiguous().reshape({-1});
    std::vector<double> got(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
    return got == w["values"].get<std::vector<double>>();
  };

  // torch -> wanlab
  std::string from_torch = scratch("from_torch");
  EXPECT(run(quote(py) + " " + quote(script) + " write " + quote(from_torch)) == 0);
  nlohmann::json manifest = nlohmann::json::parse(read_text_file(from_torch + "/manifest.json"));
  EXPECT(manifest["files"].size() >= 5);
  for (const auto& f : manifest["files"]) {
    std::string p = from_torch + "/" + f["file"].get<std::string>();
    if (f.contains("error")) {
      EXPECT_ERROR(load_pth(p), f["error"].get<std::string>(), p);
      continue;
    }
    for (bool mmap : {true, false}) {
      TensorMap m = load_pth(p, mmap);
      EXPECT(m.size() == f["tensors"].size());
      for (const auto& [name, w] : f["tensors"].items()) {
        if (!m.count(name)) throw wantest::Failure{p + ": no tensor " + name};
        if (!expected(w, m[name])) throw wantest::Failure{p + ": tensor " + name + " differs from torch's"};
      }
      for (const auto& pair : f["shares"])
        EXPECT(m[pair[0].get<std::string>()].data.is_alias_of(m[pair[1].get<std::string>()].data));
    }
  }

  // wanlab -> torch
  std::string to_torch = scratch("to_torch");
  fs::create_directories(to_torch);
  nlohmann::json out;
  out["files"] = nlohmann::json::array();
  auto add = [&](const std::string& file, const TensorMap& tensors, bool written = false) {
    if (!written) save_pth(to_torch + "/" + file, tensors);
    nlohmann::json f;
    f["file"] = file;
    f["tensors"] = nlohmann::json::object();
    f["shares"] = nlohmann::json::array();
    f["checks"] = nlohmann::json::array({"data_pkl_exact"});
    for (const auto& [name, t] : tensors) {
      at::Tensor v = (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? to_float32(t) : t.data)
                         .to(at::kDouble).contiguous().reshape({-1});
      f["tensors"][name] = {{"dtype", dtype_name(t.dtype)},
                            {"shape", t.data.sizes().vec()},
                            {"values", std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel())}};
    }
    out["files"].push_back(f);
  };
  TensorMap plain, f8;
  for (const auto& [name, t] : all_dtypes()) (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? f8 : plain)[name] = t;
  add("plain.pth", plain);
  add("f8.pth", f8);  // torch < 2.2 cannot read float8 and skips this file
  TensorMap odd;
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  odd["scalar"] = {at::scalar_tensor(-2.25, at::kFloat), DType::F32};
  odd["empty"] = {at::zeros({0, 3}, at::kHalf), DType::F16};
  odd["empty_tail"] = {at::zeros({3, 0}, at::kFloat), DType::F32};
  odd["strided"] = {base.slice(1, 1, 6, 2), DType::F32};
  odd["five_d"] = {at::arange(32, at::kLong).reshape({2, 1, 2, 2, 4}), DType::I64};
  odd["wide"] = {at::arange(140000, at::kLong).remainder(251).to(at::kByte).reshape({2, 70000}), DType::U8};
  add("odd.pth", odd);
  TensorMap single;
  single["only_one"] = {at::arange(3, at::kFloat), DType::F32};
  add("single.pth", single);
  TensorMap many;  // > 255 memo slots and > 1000 items: LONG_BINPUT and two SETITEMS batches
  for (int k = 0; k < 1001; ++k) many["layer" + std::to_string(k)] = {at::full({2}, double(k), at::kFloat), DType::F32};
  add("many.pth", many);
  {  // every field in ZIP64 form
    const Archive parts = archive_parts(plain);
    ZipWriter w(to_torch + "/zip64.pth", true);
    w.add("archive/data.pkl", parts.pkl);
    w.add("archive/byteorder", std::string("little"));
    for (const auto& [key, bytes] : parts.storages) w.add("archive/data/" + key, bytes);
    w.add("archive/version", std::string("3\n"));
    w.finish();
    add("zip64.pth", plain, true);
  }
  std::string mf = to_torch + "/manifest.json";
  std::string js = out.dump(1);
  write_file_atomic(mf, js.data(), js.size());
  EXPECT(run(quote(py) + " " + quote(script) + " check " + quote(to_torch)) == 0);
}
